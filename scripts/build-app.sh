#!/usr/bin/env bash
# Builds and installs fvm's menu-bar app.
#
#   scripts/build-app.sh build     Linux: bin/fvm-app (cgo; needs libayatana-appindicator3-dev)
#                                  macOS: bin/fvm.app with the app, the fvm CLI and the vz
#                                  helper (fvm-vz, one process per vz VM), signed
#   scripts/build-app.sh install   macOS: fvm.app into ~/Applications, fvm linked into $BINDIR
#                                  Linux: fvm and fvm-app into $BINDIR
#
# Environment: GO (go), VERSION (git describe), BINDIR (~/.local/bin),
# SIGN_IDENTITY (macOS; "-" = ad hoc, the default; a real identity such as
# "Developer ID Application: ..." also turns on the hardened runtime).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
BINDIR=${BINDIR:-$HOME/.local/bin}
OS=$(uname -s)

build_cli() {
	CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X github.com/fvmhq/fvm/cli.Version=$VERSION" -o bin/fvm .
}

build_app() {
	CGO_ENABLED=1 "$GO" build -trimpath -ldflags "-s -w -X main.Version=$VERSION" -o bin/fvm-app ./app/cmd/fvm-app
}

# The vz helper links Virtualization.framework (Code-Hex/vz) and AppKit (darwinkit).
build_helper() {
	CGO_ENABLED=1 "$GO" build -trimpath -ldflags "-s -w" -o bin/fvm-vz ./app/cmd/fvm-vz
}

# sign signs the bundle inside out: nested code first, then the bundle, whose
# main executable gets the app's entitlements (virtualization, network). The vz
# helper owns the VMs, so it needs the same entitlements (virtualization above all).
sign() {
	local id=${SIGN_IDENTITY:--}
	local opts=(--force --sign "$id")
	if [[ $id != - ]]; then
		opts+=(--options runtime --timestamp)
	fi
	codesign "${opts[@]}" bin/fvm.app/Contents/MacOS/fvm
	codesign "${opts[@]}" --entitlements entitlements.plist bin/fvm.app/Contents/MacOS/fvm-vz
	codesign "${opts[@]}" --entitlements entitlements.plist bin/fvm.app
	codesign --verify --strict --verbose=1 bin/fvm.app
}

build() {
	case $OS in
	Darwin)
		build_cli
		build_app
		build_helper
		"$GO" run ./scripts/mkbundle -app bin/fvm-app -cli bin/fvm -helper bin/fvm-vz -version "$VERSION" -out bin/fvm.app
		sign
		echo "built bin/fvm.app ($VERSION, signed ${SIGN_IDENTITY:-ad hoc})"
		;;
	*)
		build_app
		echo "built bin/fvm-app ($VERSION)"
		;;
	esac
}

install_app() {
	mkdir -p "$BINDIR"
	case $OS in
	Darwin)
		[[ -d bin/fvm.app ]] || build
		mkdir -p "$HOME/Applications"
		rm -rf "$HOME/Applications/fvm.app"
		ditto bin/fvm.app "$HOME/Applications/fvm.app"
		ln -sfn "$HOME/Applications/fvm.app/Contents/MacOS/fvm" "$BINDIR/fvm"
		echo "installed ~/Applications/fvm.app; $BINDIR/fvm links to its CLI"
		;;
	*)
		[[ -x bin/fvm ]] || build_cli
		[[ -x bin/fvm-app ]] || build_app
		install -m 0755 bin/fvm bin/fvm-app "$BINDIR/"
		echo "installed fvm and fvm-app into $BINDIR"
		;;
	esac
	case ":$PATH:" in
	*":$BINDIR:"*) ;;
	*) echo "note: $BINDIR is not in your PATH: add it to use fvm from a terminal" ;;
	esac
}

case ${1:-build} in
build) build ;;
install) install_app ;;
*)
	echo "usage: $0 [build|install]" >&2
	exit 2
	;;
esac
