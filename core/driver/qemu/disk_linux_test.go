package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// BenchmarkCreateOverlay measures Create (overlay + UEFI vars) on bases whose blocks
// are really allocated on disk, 2 GiB and 20 GiB: the time must not grow with the base,
// since only a qcow2 header pointing at it is written.
func BenchmarkCreateOverlay(b *testing.B) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		b.Skip("qemu-img not installed (apt-get install qemu-utils)")
	}
	for _, size := range []int64{2 << 30, 20 << 30} {
		b.Run(vm.FormatSize(size)+"-base", func(b *testing.B) {
			dir := b.TempDir()
			base := filepath.Join(dir, "base.raw")
			f, err := os.Create(base)
			if err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
				f.Close()
				b.Skipf("fallocate %s: %v", vm.FormatSize(size), err)
			}
			f.Close()
			fw := b.TempDir()
			os.WriteFile(filepath.Join(fw, "OVMF_CODE_4M.fd"), []byte("code"), 0o644)
			os.WriteFile(filepath.Join(fw, "OVMF_VARS_4M.fd"), []byte("vars-template"), 0o644)
			d := New(Options{FirmwareDirs: []string{fw}})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				vmDir := filepath.Join(dir, "vm"+strconv.Itoa(i))
				if err := os.Mkdir(vmDir, 0o700); err != nil {
					b.Fatal(err)
				}
				inst := &store.Instance{Dir: vmDir, Spec: vm.Spec{Name: "bench", Image: "bench", BaseImage: base,
					Arch: vm.AMD64, CPUs: 1, MemoryMiB: 256, DiskBytes: 40 << 30, User: "fvm", Accel: "tcg"}}
				if err := d.Create(context.Background(), inst, driver.CreateInput{Base: baseOf(b, inst)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
