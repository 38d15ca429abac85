#!/usr/bin/env bash
# Builds and installs fvm's menu-bar app.
#
#   scripts/build-app.sh build     Linux: bin/fvm-app (cgo; needs libayatana-appindicator3-dev)
#                                  macOS: bin/fvm.app with the app and the fvm CLI in
#                                  Contents/MacOS and the vz helper (fvm-vz, one process per
#                                  vz VM) as a nested app in Contents/Helpers/fvm-vz.app, signed
#   scripts/build-app.sh install   macOS: fvm.app into ~/Applications, fvm linked into $BINDIR
#                                  Linux: fvm and fvm-app into $BINDIR
#
# Environment: GO (go), VERSION (git describe), BINDIR (~/.local/bin),
# SIGN_IDENTITY (macOS; "-" = ad hoc, the default; a real identity such as
# "Developer ID Application: ..." also turns on the hardened runtime),
# OUT (bin: where the app goes), GOARCH (macOS: the bundle's architecture,
# default this Mac's; make release builds both).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
BINDIR=${BINDIR:-$HOME/.local/bin}
OUT=${OUT:-bin}
OS=$(uname -s)

# Binaries that go into the bundle are built in $OUT/build, not beside bin/fvm:
# an unsigned helper there would be found before the bundle's signed one.
build_cli() {
	CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X github.com/fvmhq/fvm/cli.Version=$VERSION" -o "$1" .
}

build_app() {
	CGO_ENABLED=1 "$GO" build -trimpath -ldflags "-s -w -X main.Version=$VERSION" -o "$1" ./app/cmd/fvm-app
}

# The vz helper links Virtualization.framework (Code-Hex/vz) and AppKit (darwinkit).
build_helper() {
	CGO_ENABLED=1 "$GO" build -trimpath -ldflags "-s -w" -o "$1" ./app/cmd/fvm-vz
}

# sign signs the bundle inside out: the nested helper app first (it owns the
# VMs: the virtualization entitlement, and network for its forwards), the CLI,
# then the bundle, whose main executable gets the app's entitlements. Then it
# checks that the helper really carries the virtualization entitlement.
sign() {
	local app=$1 id=${SIGN_IDENTITY:--}
	local opts=(--force --sign "$id")
	if [[ $id != - ]]; then
		opts+=(--options runtime --timestamp)
	fi
	codesign "${opts[@]}" --entitlements entitlements.plist "$app/Contents/Helpers/fvm-vz.app"
	codesign "${opts[@]}" "$app/Contents/MacOS/fvm"
	codesign "${opts[@]}" --entitlements entitlements.plist "$app"
	codesign --verify --strict --deep --verbose=1 "$app"
	if ! codesign -d --entitlements - --xml "$app/Contents/Helpers/fvm-vz.app" 2>/dev/null | grep -q com.apple.security.virtualization; then
		echo "build-app: the vz helper lacks the com.apple.security.virtualization entitlement after signing" >&2
		exit 1
	fi
}

build() {
	case $OS in
	Darwin)
		local work=$OUT/build
		mkdir -p "$work"
		rm -f bin/fvm-vz # an unsigned helper left by an older build-app.sh
		build_cli "$work/fvm"
		build_app "$work/fvm-app"
		build_helper "$work/fvm-vz"
		"$GO" run ./scripts/mkbundle -app "$work/fvm-app" -cli "$work/fvm" -helper "$work/fvm-vz" -version "$VERSION" -out "$OUT/fvm.app"
		sign "$OUT/fvm.app"
		echo "built $OUT/fvm.app ($VERSION, $("$GO" env GOARCH), signed ${SIGN_IDENTITY:-ad hoc})"
		;;
	*)
		build_app bin/fvm-app
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
		[[ -x bin/fvm ]] || build_cli bin/fvm
		[[ -x bin/fvm-app ]] || build_app bin/fvm-app
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
