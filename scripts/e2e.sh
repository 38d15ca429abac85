#!/usr/bin/env bash
# End-to-end tests: real VMs booted by bin/fvm (TCG where KVM is unusable), then the
# tray app clicking Start/Stop on a real VM through its D-Bus menu under Xvfb.
# FVM_E2E_HOME keeps the state dir (and its built image) between runs; FVM_E2E_FULL=1
# adds the slow tests (`make e2e-full`), E2E_TIMEOUT bounds the Go tests (default 40m).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
home=${FVM_E2E_HOME:-}
if [[ -z $home ]]; then
	home=$(mktemp -d /tmp/fvm-e2e.XXXXXX) # short: socket paths are limited to ~100 bytes
	trap 'rm -rf "$home"' EXIT
fi
export FVM_BIN=$PWD/bin/fvm FVM_E2E_HOME=$home
# The tests' output as -v prints it, then what failed and why: minutes of
# interleaved log lines lie between a failure's message and the end of the
# log, the part of it a CI report shows.
"$GO" build -o bin/testdigest ./scripts/testdigest
"$GO" test -tags e2e -json -count=1 -timeout "${E2E_TIMEOUT:-40m}" ./scripts/e2e/ ${E2E_RUN:+-run "$E2E_RUN"} |
	bin/testdigest -src scripts/e2e -mark "GUEST KERNEL CRASH"

if [[ $(uname -s) == Linux && -z ${E2E_RUN:-} ]]; then
	FVM_APP_E2E=1 FVM_APP_BIN=$PWD/bin/fvm-app FVM_APP_E2E_HOME=$home FVM_APP_E2E_IMAGE=debian-local \
		"$GO" test -count=1 -json -timeout 15m ./app/e2e/ | bin/testdigest -src app/e2e
fi
