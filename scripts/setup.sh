#!/usr/bin/env bash
# Installs what fvm needs to build, run VMs and run its tests.
# Debian/Ubuntu: apt-get (as root or with sudo); macOS: Homebrew.
set -euo pipefail

cd "$(dirname "$0")/.."

# need_go fails unless the Go in PATH is at least the version go.mod names
# (an older one would try to download a newer toolchain, or refuse).
need_go() {
	local want have
	want=$(awk '$1 == "go" { print $2; exit }' go.mod)
	command -v go >/dev/null || { echo "setup: Go $want or newer is needed (https://go.dev/dl)" >&2; exit 1; }
	have=$(GOTOOLCHAIN=local go env GOVERSION)
	have=${have#go}
	if [[ $(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1) != "$want" ]]; then
		echo "setup: go.mod needs Go $want, and the go in PATH is $have: install Go $want or newer (https://go.dev/dl, or brew upgrade go)" >&2
		exit 1
	fi
}

if [[ "$(uname -s)" == Darwin ]]; then
	# cgo (the app, the vz helper) needs Apple's Command Line Tools: clang and the macOS SDK.
	if ! xcode-select -p >/dev/null 2>&1 || ! xcrun --find clang >/dev/null 2>&1; then
		echo "setup: the Command Line Tools are needed to build fvm.app: run xcode-select --install, then this again" >&2
		exit 1
	fi
	sdk=$(xcrun --show-sdk-version 2>/dev/null || echo 0)
	if [[ ${sdk%%.*} -lt 14 ]]; then
		echo "setup: note: the macOS SDK is $sdk: a vz helper built with it cannot save VMs (suspend needs the macOS 14 SDK; update the Command Line Tools)" >&2
	fi
	command -v brew >/dev/null || { echo "setup: Homebrew is needed: https://brew.sh" >&2; exit 1; }
	brew list qemu >/dev/null 2>&1 || brew install qemu
	command -v go >/dev/null || brew install go
	need_go
	echo "setup: ok"
	exit 0
fi

pkgs=(
	qemu-system-x86 ovmf qemu-system-arm qemu-efi-aarch64  # both guest arches on every host: emulators, UEFI firmware
	qemu-utils                               # qemu-img
	mmdebstrap e2fsprogs dosfstools mtools fdisk  # fvm image build debian
	qemu-user-static arch-test               # image builds of the other arch (binfmt_misc, registered below)
	fakeroot                                 # image build without root
	uidmap                                   # image build without root: mmdebstrap's unshare mode (newuidmap)
	gcc pkg-config libayatana-appindicator3-dev  # the tray app (cgo)
	openssh-client xorriso busybox-static   # tests: plain ssh via `fvm ssh-config`, seed ISO listing, test installer ISO
	openssh-server                           # tests: remote hosts and qemu+ssh:// through a real sshd (the tests start their own on 127.0.0.1)
	grub-efi-amd64-bin xz-utils              # tests: the test installer ISO's GRUB, Debian 13's xz-compressed modules
	xvfb xauth dbus                          # tests: the tray app under a virtual display and session bus
	chromium                                 # tests: the web console in a real (headless) browser
	ruby                                     # tests: ruby -c of the Homebrew formula and cask (make release)
	libvirt-daemon libvirt-clients           # the libvirt backend's tests: libvirtd + its QEMU driver, virsh to look (not
	                                         # libvirt-daemon-system: systemd units, polkit and the default NAT network)
	tini                                     # libvirtd.sh: a subreaper for libvirtd's daemonized QEMUs where no systemd reaps
	ca-certificates git make
)

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

# qemu-user-static registers its binfmt_misc handlers through systemd-binfmt; where
# nothing did (containers, no systemd), mount binfmt_misc and register the handler of
# the other arch from the package's own binfmt.d file (its F flag opens the
# interpreter now, so it works inside build chroots).
case "$(uname -m)" in
x86_64) other=qemu-aarch64 ;;
aarch64) other=qemu-x86_64 ;;
*) other="" ;;
esac
binfmt=/proc/sys/fs/binfmt_misc
if [[ -n $other && ! -e $binfmt/$other && -r /usr/lib/binfmt.d/$other.conf ]]; then
	SUDO=""
	[[ $(id -u) -ne 0 ]] && SUDO=sudo
	[[ -e $binfmt/register ]] || $SUDO mount -t binfmt_misc binfmt_misc $binfmt ||
		echo "setup: cannot mount binfmt_misc: image builds of the other arch will not work" >&2
	if [[ -e $binfmt/register && ! -e $binfmt/$other ]]; then
		$SUDO systemctl restart systemd-binfmt 2>/dev/null || true
		[[ -e $binfmt/$other ]] || $SUDO sh -c "cat /usr/lib/binfmt.d/$other.conf > $binfmt/register" ||
			echo "setup: cannot register $other with binfmt_misc: image builds of the other arch will not work" >&2
	fi
fi
need_go
# libvirtd's QEMU driver runs guests as libvirt-qemu (Debian's build default), whom
# libvirt-daemon-system's postinst would create; without that package, create it here,
# with the directories libvirtd logs and keeps state in. scripts/libvirtd.sh starts it.
if command -v libvirtd >/dev/null && ! getent passwd libvirt-qemu >/dev/null; then
	SUDO=""
	[[ $(id -u) -ne 0 ]] && SUDO=sudo
	getent group kvm >/dev/null || $SUDO groupadd --system kvm
	getent group libvirt-qemu >/dev/null || $SUDO groupadd --system libvirt-qemu
	$SUDO useradd --system --gid kvm --groups libvirt-qemu --home-dir /var/lib/libvirt --no-create-home \
		--shell /usr/sbin/nologin --comment "Libvirt Qemu" libvirt-qemu
fi
echo "setup: ok"
