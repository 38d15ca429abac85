package vz

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fvmhq/fvm/core/image"
)

// BenchmarkCloneDisk20G makes VM disks from a 20 GiB raw base holding 320
// MiB of data in 1 MiB runs every 64 MiB (a cloud image's spread), as Create
// does. On APFS it measures clonefile (expect milliseconds: make e2e-vz runs
// it on a Mac); where the filesystem cannot clone it measures the sparse-copy
// fallback. Run: go test -run XXX -bench CloneDisk ./core/driver/vz/
// (FVM_BENCH_DIR picks the filesystem, default the system temp dir).
func BenchmarkCloneDisk20G(b *testing.B) {
	dir, err := os.MkdirTemp(os.Getenv("FVM_BENCH_DIR"), "fvm-clone-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	raw := filepath.Join(dir, "base.vz.raw")
	f, err := os.Create(raw)
	if err != nil {
		b.Fatal(err)
	}
	const size = 20 << 30
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	chunk := random(1 << 20)
	for off := int64(0); off < size; off += 64 << 20 {
		if _, err := f.WriteAt(chunk, off); err != nil {
			b.Fatal(err)
		}
	}
	f.Sync()
	f.Close()
	b.ResetTimer()
	var cloned bool
	for i := range b.N {
		disk := filepath.Join(dir, "disk"+string(rune('a'+i%26))+".raw")
		os.Remove(disk)
		if cloned, err = CloneDisk(context.Background(), raw, disk, size); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(disk)
		b.StartTimer()
	}
	b.ReportMetric(map[bool]float64{true: 1, false: 0}[cloned], "cloned")
}

// BenchmarkRawConversion converts a real base (FVM_BENCH_BASE, a qcow2 in a
// bases dir, only read) to raw the way RawOf does, side by side with
// `qemu-img convert -O raw`, and checks once that both give the same bytes.
// Output goes to FVM_BENCH_DIR (default the system temp dir), never beside
// the base. Run: FVM_BENCH_BASE=... go test -run XXX -bench RawConversion ./core/driver/vz/
func BenchmarkRawConversion(b *testing.B) {
	base := os.Getenv("FVM_BENCH_BASE")
	if base == "" {
		b.Skip("set FVM_BENCH_BASE to a qcow2 base image")
	}
	info, err := image.Inspect(base)
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp(os.Getenv("FVM_BENCH_DIR"), "fvm-convert-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ours, theirs := filepath.Join(dir, "ours.raw"), filepath.Join(dir, "qemu-img.raw")
	src, err := os.Open(base)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	b.Run("go-qcow2reader", func(b *testing.B) {
		b.SetBytes(info.VirtualSize)
		for range b.N {
			os.Remove(ours)
			if err := convertToRaw(context.Background(), src, ours, info.VirtualSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("qemu-img", func(b *testing.B) {
		b.SetBytes(info.VirtualSize)
		for range b.N {
			os.Remove(theirs)
			if out, err := exec.Command("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", base, theirs).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
	if !sameFiles(b, ours, theirs) {
		b.Fatal("the conversion differs from qemu-img's")
	}
	b.Logf("allocated: ours %d MiB, qemu-img %d MiB, of %d MiB virtual", blocks(b, ours)>>20, blocks(b, theirs)>>20, info.VirtualSize>>20)
}

func sameFiles(b *testing.B, x, y string) bool {
	fx, err := os.Open(x)
	if err != nil {
		b.Fatal(err)
	}
	defer fx.Close()
	fy, err := os.Open(y)
	if err != nil {
		b.Fatal(err)
	}
	defer fy.Close()
	bx, by := make([]byte, 4<<20), make([]byte, 4<<20)
	for {
		nx, ex := io.ReadFull(fx, bx)
		ny, _ := io.ReadFull(fy, by)
		if nx != ny || !bytes.Equal(bx[:nx], by[:ny]) {
			return false
		}
		if ex != nil {
			return true
		}
	}
}

func blocks(b *testing.B, p string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		b.Fatal(err)
	}
	return st.Blocks * 512
}
