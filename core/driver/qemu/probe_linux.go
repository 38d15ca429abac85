package qemu

import (
	"os"
	"runtime"

	"github.com/fvmhq/fvm/core/vm"
)

// ProbeHost reads what acceleration depends on: /dev/kvm access and the KVM modules.
func ProbeHost() HostProbe {
	p := HostProbe{OS: runtime.GOOS, Arch: string(vm.HostArch()), Modules: map[string]bool{}}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		p.KVMErr = err
	} else {
		f.Close()
	}
	for _, m := range []string{"kvm_intel", "kvm_amd", "kvm_pvm"} {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			p.Modules[m] = true
		}
	}
	return p
}
