package vz

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
)

// writeAt puts data at offsets in a new sparse raw file of size bytes.
func writeSparse(t *testing.T, path string, size int64, at map[int64][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range at {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestRawOfMatchesQemuImg converts qcow2 images made by qemu-img (plain and
// compressed, with data at several offsets: the first sector, across cluster
// boundaries, an unaligned tail, the last byte) and compares the result byte
// for byte with `qemu-img convert -O raw`.
func TestRawOfMatchesQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (scripts/setup.sh installs it)")
	}
	const size = 96<<20 + 4096 // not a multiple of the 64 KiB cluster size
	data := map[int64][]byte{
		0:                 random(512),
		64<<10 - 100:      random(300), // across a cluster boundary
		1<<20 + 12345:     random(70000),
		33<<20 + 7:        bytes.Repeat([]byte{0}, 4096), // written zeros: must read as zeros
		33<<20 + 8192:     random(1),
		size - 4096 - 700: random(700),
		size - 1:          {0xff},
	}
	for _, compressed := range []bool{false, true} {
		name := "plain"
		if compressed {
			name = "compressed"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src.raw")
			writeSparse(t, src, size, data)
			base := filepath.Join(dir, "sha256-"+strings.Repeat("ab", 32)+".qcow2")
			args := []string{"convert", "-q", "-f", "raw", "-O", "qcow2"}
			if compressed {
				args = append(args, "-c")
			}
			qemuImg(t, append(args, src, base)...)
			want := filepath.Join(dir, "want.raw")
			qemuImg(t, "convert", "-q", "-f", "qcow2", "-O", "raw", base, want)

			raw, took, err := RawOf(context.Background(), baseOf(t, base))
			if err != nil {
				t.Fatal(err)
			}
			if raw != image.DerivedPath(base, RawSuffix) || took <= 0 {
				t.Fatalf("RawOf = %s, %v: want a fresh conversion beside the base", raw, took)
			}
			got, _ := os.ReadFile(raw)
			exp, _ := os.ReadFile(want)
			if len(got) != size || !bytes.Equal(got, exp) {
				t.Fatalf("conversion differs from qemu-img's (%d vs %d bytes)", len(got), len(exp))
			}
			if a := allocated(t, raw); a > 2<<20 {
				t.Errorf("conversion allocates %d bytes for ~80 KiB of data: it is not sparse", a)
			}
			if st, _ := os.Stat(raw); st.Mode().Perm() != 0o400 {
				t.Errorf("conversion mode %v, want read-only and private like the base (0400)", st.Mode().Perm())
			}
			// Once per base: the next call reuses it.
			if again, took, err := RawOf(context.Background(), baseOf(t, base)); err != nil || again != raw || took != 0 {
				t.Fatalf("second RawOf = %s, %v, %v: want the existing conversion", again, took, err)
			}
			left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
			if len(left) != 0 {
				t.Errorf("temporaries left: %v", left)
			}
		})
	}
}

func TestRawOfConcurrentAndRaw(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	writeSparse(t, src, 8<<20, map[int64][]byte{510: {0x55, 0xaa}, 5 << 20: random(9000)})
	// A raw base is cloned as it is.
	if raw, took, err := RawOf(context.Background(), baseOf(t, src)); err != nil || raw != src || took != 0 {
		t.Fatalf("raw base: %s %v %v", raw, took, err)
	}
	base := filepath.Join(dir, "sha256-"+strings.Repeat("cd", 32)+".qcow2")
	qemuImg(t, "convert", "-q", "-f", "raw", "-O", "qcow2", src, base)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conversions := 0
	for range 4 {
		wg.Go(func() {
			_, took, err := RawOf(context.Background(), baseOf(t, base))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			if took > 0 {
				conversions++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if conversions != 1 {
		t.Errorf("%d conversions for 4 concurrent VMs of one base, want 1", conversions)
	}
	got, _ := os.ReadFile(image.DerivedPath(base, RawSuffix))
	exp, _ := os.ReadFile(src)
	if !bytes.Equal(got, exp) {
		t.Fatal("conversion differs from the source")
	}
}

func TestRawOfRefusesBackingFile(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	back := filepath.Join(dir, "secret.raw")
	writeSparse(t, back, 1<<20, map[int64][]byte{0: []byte("secret")})
	overlay := filepath.Join(dir, "sha256-"+strings.Repeat("ef", 32)+".qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", back, overlay)
	if _, _, err := RawOf(context.Background(), baseOf(t, overlay)); err == nil || !strings.Contains(err.Error(), "backing file") {
		t.Fatalf("a qcow2 with a backing file: %v", err)
	}
}

// TestCloneDiskFallback makes a VM disk where the filesystem cannot clone
// (ext4, tmpfs: the case of a Mac volume that is not APFS) and checks the copy:
// same bytes, still sparse, grown to the disk size, private mode.
func TestCloneDiskFallback(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "base.vz.raw")
	const size = 64 << 20
	writeSparse(t, raw, size, map[int64][]byte{0: random(4096), 7<<20 + 3: random(100000), size - 10: random(10)})
	os.Chmod(raw, 0o444)
	disk := filepath.Join(dir, DiskFile)
	cloned, err := CloneDisk(context.Background(), raw, disk, 128<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cloned=%v (the filesystem here %s)", cloned, map[bool]string{true: "reflinks", false: "copies"}[cloned])
	st, err := os.Stat(disk)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 128<<20 || st.Mode().Perm() != 0o600 {
		t.Errorf("disk is %d bytes, mode %v: want 128 MiB, 0600", st.Size(), st.Mode().Perm())
	}
	got, _ := os.ReadFile(disk)
	exp, _ := os.ReadFile(raw)
	if !bytes.Equal(got[:size], exp) || !bytes.Equal(got[size:], make([]byte, len(got)-size)) {
		t.Fatal("disk content differs from the base followed by zeros")
	}
	if !cloned {
		if a := allocated(t, disk); a > 4<<20 {
			t.Errorf("copy allocates %d bytes for ~100 KiB of data: not sparse", a)
		}
	}
	// The fallback itself, whatever this filesystem does.
	copyPath := filepath.Join(dir, "copy")
	if err := sparseCopy(context.Background(), raw, copyPath); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(copyPath); !bytes.Equal(got, exp) {
		t.Fatal("sparse copy differs")
	}
	if a := allocated(t, copyPath); a > 4<<20 {
		t.Errorf("sparse copy allocates %d bytes", a)
	}
	// Smaller than the base: refused, nothing left.
	small := filepath.Join(dir, "small.raw")
	if _, err := CloneDisk(context.Background(), raw, small, 1<<20); err == nil || !strings.Contains(err.Error(), "use --disk 1G or more") {
		t.Fatalf("too small a disk: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 || exists(small) {
		t.Errorf("left behind: %v", left)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// baseOf describes a base file as the host resolves it (driver.Base).
func baseOf(t *testing.T, path string) *driver.Base {
	t.Helper()
	info, err := image.Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	return &driver.Base{Path: path, Format: string(info.Format), VirtualSize: info.VirtualSize}
}

func lookQemuImg() (string, error) { return exec.LookPath("qemu-img") }

func newTestInstance(t *testing.T, root, base string) *store.Instance {
	t.Helper()
	s := baseSpec()
	s.BaseImage, s.DiskBytes = base, 1<<30
	dir := filepath.Join(root, s.Name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &store.Instance{Dir: dir, Spec: *s}
}

// TestRawOfConvertsOnlyWhatItChecked: a base that names a backing file (as a
// base rewritten after it was registered would) is refused before anything is
// converted, and so is a symlink or FIFO in a base's place: the header is
// checked on the descriptor the conversion reads, never on a path opened twice.
func TestRawOfConvertsOnlyWhatItChecked(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.raw")
	writeSparse(t, secret, 1<<20, map[int64][]byte{0: []byte("host secret")})
	evil := filepath.Join(dir, "sha256-"+strings.Repeat("ef", 32)+".qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, evil)
	link := filepath.Join(dir, "sha256-"+strings.Repeat("ab", 32)+".qcow2")
	os.Symlink(evil, link)
	fifo := filepath.Join(dir, "sha256-"+strings.Repeat("cd", 32)+".qcow2")
	syscall.Mkfifo(fifo, 0o600)
	for _, c := range []struct{ base, says string }{
		{evil, "backing file"}, {link, "symlink"}, {fifo, "FIFO"},
	} {
		done := make(chan error, 1)
		b := &driver.Base{Path: c.base, Format: "qcow2", VirtualSize: 1 << 20} // as registered
		go func() { _, _, err := RawOf(context.Background(), b); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Errorf("RawOf(%s) = %v, want a refusal naming the %s", filepath.Base(c.base), err, c.says)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("RawOf(%s) blocked", filepath.Base(c.base))
		}
		if _, err := os.Stat(image.DerivedPath(c.base, RawSuffix)); err == nil {
			t.Errorf("a conversion of %s was made", filepath.Base(c.base))
		}
	}
}
