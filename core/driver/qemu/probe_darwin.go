package qemu

import (
	"runtime"

	"github.com/fvmhq/fvm/core/vm"
	"golang.org/x/sys/unix"
)

// ProbeHost reads whether Hypervisor.framework is usable (kern.hv_support).
func ProbeHost() HostProbe {
	p := HostProbe{OS: runtime.GOOS, Arch: string(vm.HostArch())}
	v, err := unix.SysctlUint32("kern.hv_support")
	p.HVF = err == nil && v == 1
	return p
}
