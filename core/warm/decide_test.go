package warm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// warmer is a driver whose clones' fingerprint is fp (and none for arm64).
type warmer struct {
	fp    string
	saved bool // its VMs have saved state of their own
}

func (warmer) Name() string { return "fake" }
func (warmer) Caps(_ context.Context, s *vm.Spec) driver.Caps {
	c := driver.Caps{WarmClone: true, SaveState: true}
	if s.Arch == vm.ARM64 {
		c.Off(driver.CapWarmClone, "no clones of arm64 VMs")
	}
	return c
}
func (warmer) Validate(context.Context, *vm.Spec) error                          { return nil }
func (warmer) Create(context.Context, *store.Instance, driver.CreateInput) error { return nil }
func (warmer) Start(context.Context, *store.Instance, driver.StartOptions) (driver.Machine, error) {
	return nil, errors.New("no")
}
func (warmer) Attach(context.Context, *store.Instance) (driver.Machine, error) {
	return nil, driver.ErrNotRunning
}
func (warmer) Delete(context.Context, *store.Instance) error { return nil }
func (warmer) BasesInUse(string) ([]string, error)           { return nil, nil }
func (warmer) OpenLog(*store.Instance, string) (driver.LogFile, error) {
	return nil, os.ErrNotExist
}
func (w warmer) WarmFingerprint(context.Context, *vm.Spec) (string, error) { return w.fp, nil }
func (w warmer) FreezeSnapshot(*store.Instance) (string, error)            { return w.fp, nil }
func (w warmer) HasSavedState(*store.Instance) bool                        { return w.saved }
func (w warmer) DiscardState(*store.Instance) error                        { return nil }

const fpA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func testPool(t *testing.T, w warmer) *Pool {
	t.Helper()
	l := store.Layout{CacheDir: t.TempDir(), DataDir: t.TempDir()}
	return New(context.Background(), Options{Layout: l,
		Bind:   func(ctx context.Context, s *vm.Spec) (*driver.VM, error) { return driver.Bind(ctx, w, s), nil },
		Target: func(*store.Instance, driver.Machine, string) sshx.Target { return sshx.Target{} },
	})
}

func spec() vm.Spec {
	return vm.Spec{Name: "web1", Image: "debian-local", BaseImage: "/cache/bases/b.qcow2", Arch: vm.AMD64, CPUs: 2, MemoryMiB: 2048,
		User: "fvm", Backend: "fake", DiskBytes: 20 << 30}
}

// snapshot writes a snapshot of s's shape made with fp.
func snapshot(t *testing.T, p *Pool, s vm.Spec, fp string, disk int64) string {
	t.Helper()
	dir := p.dir(ShapeKey(&s), fp)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	info := Info{Shape: ShapeKey(&s), Fingerprint: fp, Backend: s.Backend, Image: s.Image, Base: s.BaseImage, Arch: s.Arch,
		CPUs: s.CPUs, MemoryMiB: s.MemoryMiB, User: s.User, DiskBytes: disk}
	if err := store.WriteJSON(filepath.Join(dir, InfoFile), info); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDecide(t *testing.T) {
	ctx := context.Background()
	w := warmer{fp: fpA}
	p := testPool(t, w)
	s := spec()
	v := driver.Bind(ctx, w, &s)
	if d := p.Decide(ctx, v, &s); d != (Decision{}) {
		t.Fatalf("no snapshot yet: %+v", d)
	}
	dir := snapshot(t, p, s, fpA, 20<<30)
	if d := p.Decide(ctx, v, &s); d.Dir != dir || d.Notice != "" {
		t.Fatalf("a fitting snapshot: %+v", d)
	}
	small := s
	small.DiskBytes = 10 << 30
	if d := p.Decide(ctx, v, &small); d.Dir != "" || !strings.Contains(d.Notice, "smaller than the warm snapshot's") {
		t.Fatalf("a smaller disk: %+v", d)
	}
	other := warmer{fp: strings.Repeat("b", 64)}
	if d := p.Decide(ctx, driver.Bind(ctx, other, &s), &s); d.Dir != "" || !strings.Contains(d.Notice, "another QEMU or fvm") {
		t.Fatalf("another fingerprint: %+v", d)
	}
	// A VM that cannot be cloned says why, where a snapshot of its shape exists.
	shares := s
	shares.Mounts = []vm.Mount{{HostPath: "/src", GuestPath: "/src"}}
	vs := driver.Bind(ctx, w, &shares)
	vs.Caps.Off(driver.CapWarmClone, "VMs with shared folders boot cold")
	vs.Warm = nil
	if d := p.Decide(ctx, vs, &shares); d.Dir != "" || !strings.Contains(d.Notice, "shared folders") {
		t.Fatalf("shares: %+v", d)
	}
	arm := s
	arm.Arch = vm.ARM64
	if d := p.Decide(ctx, driver.Bind(ctx, w, &arm), &arm); d != (Decision{}) {
		t.Fatalf("arm64, no snapshot of its shape: quiet, got %+v", d)
	}
}

func TestForStart(t *testing.T) {
	ctx := context.Background()
	w := warmer{fp: fpA}
	p := testPool(t, w)
	s := spec()
	dir := snapshot(t, p, s, fpA, 20<<30)
	s.Warm = dir
	inst := &store.Instance{Dir: t.TempDir(), Spec: s}
	v := driver.Bind(ctx, w, &s)
	if d := p.ForStart(ctx, v, inst); d.Dir != dir {
		t.Fatalf("a clone's first start: %+v", d)
	}
	saved := driver.Bind(ctx, warmer{fp: fpA, saved: true}, &s)
	if d := p.ForStart(ctx, saved, inst); d.Dir != "" {
		t.Fatalf("over its own saved state: %+v", d)
	}
	if err := inst.SaveRuntime(store.Runtime{SSHPort: 1}); err != nil {
		t.Fatal(err)
	}
	if d := p.ForStart(ctx, v, inst); d != (Decision{}) {
		t.Fatalf("a clone that started before: %+v", d)
	}
	gone := &store.Instance{Dir: t.TempDir(), Spec: s}
	os.RemoveAll(dir)
	if d := p.ForStart(ctx, v, gone); d.Dir != "" || !strings.Contains(d.Notice, "booting cold") {
		t.Fatalf("its snapshot is gone: %+v", d)
	}
}
