#!/usr/bin/env bash
# make e2e-vz: the vz backend on a real Mac (macOS 13+, Apple silicon or Intel).
# Builds and signs bin/fvm.app (app, CLI, vz helper), then boots a Debian VM on
# vz from the bundle's CLI: SSH, shared folders, a -p forward, stop/start keeps a file, kill -9
# of the host leaves the VM running and a new host re-adopts it, the display
# window (captured with screencapture), suspend/resume on macOS 14+ Apple
# silicon, Rosetta where installed, rm leaves nothing; then measures the clone
# of a 20 GiB base on this disk. The first-run checks (scripts/e2evz/firstrun_test.go):
# the app started with FVM_HOME serves that socket (and the CLI starts the
# installed app for one), a VM started over `ssh localhost` refuses its display
# in one line and runs on, the app's console window loads its page (QEMU VM,
# brew install qemu), a tone plays through vz's virtio sound (the guest gets
# Debian's generic kernel for its driver). Needs internet (fvm pull debian,
# the kernel) unless FVM_E2E_VZ_IMAGE names a local image; Screen Recording
# (screencapture) and Accessibility (clicking the menu) for the terminal;
# Remote Login with your key authorized for localhost (else that test skips).
# FVM_E2E_HOME keeps the state dir between runs.
# Elsewhere it skips, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
if [[ $(uname -s) != Darwin ]]; then
	echo "e2e-vz: skipped: the vz backend needs macOS 13+ (Apple's Virtualization framework) and this is $(uname -s); run make e2e-vz on a Mac"
	exit 0
fi
"${MAKE:-make}" app
home=${FVM_E2E_HOME:-}
if [[ -z $home ]]; then
	home=$(mktemp -d /tmp/fvm-e2evz.XXXXXX) # short: socket paths are limited to ~100 bytes
	trap 'rm -rf "$home"' EXIT
fi
export FVM_BIN=$PWD/bin/fvm.app/Contents/MacOS/fvm FVM_E2E_HOME=$home
"$GO" test -tags e2e -v -count=1 -timeout 60m ./scripts/e2evz/ ${E2E_RUN:+-run "$E2E_RUN"}
echo "e2e-vz: clone of a 20 GiB base on $(df -h "${TMPDIR:-/tmp}" | awk 'NR==2 {print $1}') (APFS: expect milliseconds, cloned=1):"
"$GO" test -run XXX -bench CloneDisk20G -benchtime 10x ./core/driver/vz/
