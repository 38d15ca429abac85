#!/usr/bin/env bash
# Installs what fvm needs to build, run VMs and run its tests.
# Debian/Ubuntu: apt-get (as root or with sudo); macOS: Homebrew.
set -euo pipefail

if [[ "$(uname -s)" == Darwin ]]; then
	command -v brew >/dev/null || { echo "setup: Homebrew is needed: https://brew.sh" >&2; exit 1; }
	brew list qemu >/dev/null 2>&1 || brew install qemu
	command -v go >/dev/null || brew install go
	exit 0
fi

pkgs=(
	qemu-system-x86 qemu-utils ovmf          # hypervisor, qemu-img, UEFI firmware
	mmdebstrap e2fsprogs dosfstools mtools fdisk grub-efi-amd64-bin  # fvm image build debian
	fakeroot                                 # image build without root
	gcc pkg-config libayatana-appindicator3-dev  # the tray app (cgo)
	openssh-client xorriso busybox-static   # tests: plain ssh via `fvm ssh-config`, seed ISO listing, test installer ISO
	xvfb xauth dbus                          # tests: the tray app under a virtual display and session bus
	chromium                                 # tests: the web console in a real (headless) browser
	ca-certificates git make
)
if [[ "$(uname -m)" == aarch64 ]]; then pkgs+=(qemu-system-arm qemu-efi-aarch64); fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	SUDO=""
	[[ $(id -u) -ne 0 ]] && SUDO=sudo
	echo "setup: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# npm builds the web console's bundle (make web) and checks the committed one
# (make web-check); a Node.js that brings its own npm is kept.
if ! command -v npm >/dev/null; then
	SUDO=""
	[[ $(id -u) -ne 0 ]] && SUDO=sudo
	echo "setup: installing npm"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
command -v go >/dev/null || { echo "setup: Go 1.24+ is needed (https://go.dev/dl)" >&2; exit 1; }
echo "setup: ok"
