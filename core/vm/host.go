package vm

import "runtime"

// Auto is the setting that lets the host choose: `--backend auto` (the first
// backend of the host that can run the VM) and `--accel auto` (the best
// accelerator that works here). Spelled once, here.
const Auto = "auto"

// HostArch is this machine's architecture in fvm's naming: the arch of a VM
// whose image says nothing of its own (a bare disk file, an ISO), and of the
// images fvm builds by default.
func HostArch() Arch {
	a, err := ParseArch(runtime.GOARCH)
	if err != nil {
		return Arch(runtime.GOARCH) // a host fvm does not run guests on: said by whoever checks
	}
	return a
}

// IsAuto reports whether a backend or accel setting leaves the choice to the host.
func IsAuto(s string) bool { return s == "" || s == Auto }
