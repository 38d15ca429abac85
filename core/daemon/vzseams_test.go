package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// nativeMachine is a fake machine with its own display window (like vz's).
type nativeMachine struct {
	*fakeMachine
	mu    sync.Mutex
	shown int
}

func (m *nativeMachine) ShowWindow(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shown++
	return nil
}

var _ driver.NativeDisplay = (*nativeMachine)(nil)

// nicDriver is a fake driver that names its VMs' NIC address and runs Rosetta.
type nicDriver struct{ *fakeDriver }

func (n nicDriver) Caps(ctx context.Context, s *vm.Spec) driver.Caps {
	c := n.fakeDriver.Caps(ctx, s)
	c.Rosetta = true
	return c
}

// TestGuestNICAndRosetta: the seed's network config names the driver's MAC;
// --rosetta goes only to a backend that declares Rosetta, in one line elsewhere.
func TestGuestNICAndRosetta(t *testing.T) {
	plain := newFake("plain")
	vzish := nicDriver{newFake("vzish")}
	vzish.mac = "12:53:bf:98:89:e7"
	h := startHostWith(t, Options{Drivers: []driver.Driver{plain, vzish}}, plain)
	h.addImage(t)
	ctx := context.Background()

	s := newSpec("nic1")
	s.Backend = "vzish"
	v, err := h.c.Create(ctx, api.CreateRequest{Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(v.Dir, store.SeedFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(seed, []byte("macaddress: 12:53:bf:98:89:e7")) {
		t.Error("the seed's network config does not name the driver's NIC address")
	}
	s = newSpec("nic2")
	s.Backend = "plain"
	v, err = h.c.Create(ctx, api.CreateRequest{Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	if seed, _ := os.ReadFile(filepath.Join(v.Dir, store.SeedFile)); !bytes.Contains(seed, []byte("52:54:00:12:34:56")) {
		t.Error("a driver without GuestNIC gets QEMU's default MAC in the seed")
	}

	// Rosetta: auto passes over the preferred backend that lacks it.
	src := filepath.Join(t.TempDir(), "arm.raw")
	b := make([]byte, 1<<20)
	b[0], b[510], b[511] = 'a', 0x55, 0xAA
	os.WriteFile(src, b, 0o644)
	if _, err := (image.Registry{Layout: h.layout}).ImportFile(ctx, src, "tinyarm", image.ImportOptions{Arch: vm.ARM64}); err != nil {
		t.Fatal(err)
	}
	s = newSpec("ros1")
	s.Rosetta, s.Image = true, "tinyarm"
	if v, err := h.c.Create(ctx, api.CreateRequest{Spec: s}); err != nil || v.Spec.Backend != "vzish" {
		t.Fatalf("auto with --rosetta: %v %v", v.Spec.Backend, err)
	}
	s = newSpec("ros2")
	s.Rosetta, s.Image, s.Backend = true, "tinyarm", "plain"
	_, err = h.c.Create(ctx, api.CreateRequest{Spec: s})
	if api.CodeOf(err) != api.CodeUnsupported || !strings.Contains(err.Error(), "--rosetta needs the vz backend on an Apple silicon Mac; plain cannot") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("--rosetta on a backend without it: %v", err)
	}
	if h.layoutHasVM("ros2") {
		t.Fatal("a refused --rosetta left a VM dir")
	}
	s = newSpec("ros3")
	s.Rosetta = true // tiny is amd64
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: s}); api.CodeOf(err) != api.CodeInvalid || !strings.Contains(err.Error(), "drop --rosetta") {
		t.Fatalf("--rosetta on an amd64 VM: %v", err)
	}
}

// TestShowNativeDisplay: a machine with its own window shows it; others say
// there is none, so that the caller falls back to the web console.
func TestShowNativeDisplay(t *testing.T) {
	native := newFake("native")
	native.native = true
	web := newFake("web")
	h := startHostWith(t, Options{Drivers: []driver.Driver{native, web}}, native)
	h.addImage(t)
	ctx := context.Background()
	for _, b := range []string{"native", "web"} {
		s := newSpec(b + "1")
		s.Backend = b
		if _, err := h.c.Create(ctx, api.CreateRequest{Spec: s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.d.ShowNativeDisplay(ctx, "native1"); api.CodeOf(err) != api.CodeConflict || !strings.Contains(err.Error(), "fvm start native1") {
		t.Fatalf("a stopped VM: %v", err)
	}
	for _, n := range []string{"native1", "web1"} {
		if _, err := h.c.Start(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.d.ShowNativeDisplay(ctx, "native1"); err != nil {
		t.Fatal(err)
	}
	h.d.mu.Lock()
	m := h.d.vms["native1"].run.Machine.(*nativeMachine)
	h.d.mu.Unlock()
	if m.shown != 1 {
		t.Fatalf("ShowWindow called %d times", m.shown)
	}
	if err := h.d.ShowNativeDisplay(ctx, "web1"); !errors.Is(err, ErrNoNativeDisplay) {
		t.Fatalf("a VM without a native window: %v", err)
	}
	if err := h.d.ShowNativeDisplay(ctx, "nope"); !api.IsNotFound(err) {
		t.Fatalf("an unknown VM: %v", err)
	}
	// A daemon that does not host (another host has the lock) has no window to show.
	other := New(Options{Layout: h.layout, Drivers: []driver.Driver{native}})
	if err := other.ShowNativeDisplay(ctx, "native1"); !errors.Is(err, ErrNoNativeDisplay) || !strings.Contains(err.Error(), "does not host") {
		t.Fatalf("a daemon that is not serving: %v", err)
	}
}

// TestPruneDerivedFiles: a base's derived files (vz's raw conversion) stay
// while the base does or a VM reads them, and go with the base.
func TestPruneDerivedFiles(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	h.addImage(t)
	ctx := context.Background()
	v, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("keep1")})
	if err != nil {
		t.Fatal(err)
	}
	base := v.Spec.BaseImage
	raw := image.DerivedPath(base, "vz.raw")
	orphan := image.DerivedPath(filepath.Join(filepath.Dir(base), "sha256-"+strings.Repeat("0", 64)+".qcow2"), "vz.raw")
	for _, p := range []string{raw, orphan} {
		if err := os.WriteFile(p, []byte("derived"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if b, ok := image.DerivedBase(raw); !ok || b != base {
		t.Fatalf("DerivedBase(%s) = %s %v", raw, b, ok)
	}
	res, err := h.c.PruneImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !exists(raw) || !exists(base) || exists(orphan) {
		t.Fatalf("prune with the base in use: raw %v base %v orphan %v (removed %v)", exists(raw), exists(base), exists(orphan), res.Removed)
	}
	// The image and the VM go: the base and its conversion go together.
	if _, err := h.c.RemoveImage(ctx, "tiny", ""); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Remove(ctx, "keep1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.PruneImages(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(raw) || exists(base) {
		t.Fatalf("after the last user: raw %v base %v; want both removed", exists(raw), exists(base))
	}
}

// TestPruneKeepsDerivedInUse: a VM that reads a conversion keeps it even
// when its base is gone (a vz disk may be a plain copy of it).
func TestPruneKeepsDerivedInUse(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	h.addImage(t)
	ctx := context.Background()
	v, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("user1")})
	if err != nil {
		t.Fatal(err)
	}
	raw := image.DerivedPath(v.Spec.BaseImage, "vz.raw")
	os.WriteFile(raw, []byte("derived"), 0o444)
	// The fake driver's disk file says which base it reads: the conversion.
	os.WriteFile(filepath.Join(v.Dir, fakeDisk), []byte("base="+raw), 0o600)
	os.WriteFile(filepath.Join(v.Dir, store.SpecFile), []byte("{truncated"), 0o644)
	if _, err := h.c.RemoveImage(ctx, "tiny", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.PruneImages(ctx); err != nil {
		t.Fatal(err)
	}
	if !exists(raw) {
		t.Fatal("prune removed a conversion a VM reads")
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
