#!/usr/bin/env bash
# `make test`: every gate. The e2e tests' Debian image is built (mostly downloading
# and unpacking packages) while the static checks and unit tests run, which saves
# minutes of wall time; then the e2e tests boot VMs from it.
# FVM_E2E_HOME keeps the state dir (and the built image) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
home=${FVM_E2E_HOME:-}
keep=1
if [[ -z $home ]]; then
	home=$(mktemp -d /tmp/fvm-e2e.XXXXXX) # short: socket paths are limited to ~100 bytes
	keep=0
fi
host=""
cleanup() {
	if [[ -n $host ]]; then kill "$host" 2>/dev/null || true; fi
	wait 2>/dev/null || true
	if [[ $keep == 0 ]]; then rm -rf "$home"; fi
}
trap cleanup EXIT
# phase NAME CMD...: runs CMD and says how long it took (CI's budget is 30 minutes).
phase() {
	local name=$1 t0=$SECONDS
	shift
	"$@"
	echo "test: phase $name took $((SECONDS - t0)) s (total $SECONDS s)"
}

phase build "$MAKE" build app
# A host of our own (not one started on demand, detached) so that a failed check
# below can stop the build with it. It logs where an on-demand host does (the
# e2e tests read the host's log).
mkdir -p -m 0700 "$home/run"
FVM_HOME=$home bin/fvm daemon >>"$home/run/daemon.log" 2>&1 &
host=$!
for _ in $(seq 1 100); do [[ -S $home/run/fvm.sock ]] && break; sleep 0.1; done
FVM_HOME=$home bin/fvm image build debian >"$home/prebuild.log" 2>&1 &
build=$!

phase check "$MAKE" check web-check
# The release archives build and the linux one's `fvm version` runs; beside the
# fuzzing, which leaves a core idle while each target compiles.
"$MAKE" release-check >"$home/release-check.log" 2>&1 &
release=$!
phase fuzz "$MAKE" fuzz FUZZ_TIME=500x
if ! wait "$release"; then
	echo "test: make release-check failed:" >&2
	cat "$home/release-check.log" >&2
	exit 1
fi
echo "test: release-check done (total $SECONDS s)"
if ! wait "$build"; then
	echo "test: fvm image build debian failed:" >&2
	cat "$home/prebuild.log" "$home/run/daemon.log" >&2
	exit 1
fi
echo "test: image for the e2e tests: $(tail -n 1 "$home/prebuild.log")"
FVM_E2E_HOME=$home phase e2e ./scripts/e2e.sh
# Half of `make stress`'s kill cases (its default is 60): CI's 30 minutes.
STRESS_N=${STRESS_N:-30} phase stress "$MAKE" stress
