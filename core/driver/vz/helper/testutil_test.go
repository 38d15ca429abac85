package helper

import (
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

func specForTest() *vm.Spec {
	return &vm.Spec{Name: "web1", Image: "debian", Arch: vm.ARM64, CPUs: 2, MemoryMiB: 2048, DiskBytes: 20 << 30,
		User: "fvm", Backend: "vz", Created: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}
