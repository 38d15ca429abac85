package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
	"github.com/fvmhq/fvm/core/warm"
)

// readySpare puts a spare of snap for VMs of spec (without a machine) into
// d's ready spares, its directory made as makeSpare makes it.
func readySpare(t *testing.T, d *Daemon, drv driver.Driver, snap string, spec vm.Spec) *spare {
	t.Helper()
	s := spec
	s.Name, s.Warm = sparePrefix+"0a1b2c3d", snap
	inst, err := d.store.Create(s)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(d.sparesDir(), 0o700)
	store.WriteJSON(d.spareWishFile(snap), spareWish{Snapshot: snap, Spec: s})
	sp := &spare{snap: snap, key: spareKey(s), inst: inst, v: driver.Bind(context.Background(), drv, &s)}
	d.spares.mu.Lock()
	d.spares.ready = map[string]*spare{snap: sp}
	d.spares.mu.Unlock()
	return sp
}

// One spare goes to one VM, however many ask at once, and only to a VM it
// can become.
func TestTakeSpare(t *testing.T) {
	drv := newFake("fake")
	d := newTestDaemon(t, drv)
	snap := filepath.Join(d.opts.Layout.WarmDir(), "shape-fp")
	spec := newSpec("web1")
	spec.Warm = snap
	readySpare(t, d, drv, snap, spec)

	other := spec
	other.MemoryMiB = spec.MemoryMiB + 1024
	withPorts := spec
	withPorts.Ports = []vm.PortForward{{HostPort: 8080, GuestPort: 80}}
	for what, s := range map[string]vm.Spec{"another shape": other, "forwards": withPorts} {
		if d.takeSpare(snap, &s, true) != nil {
			t.Errorf("a VM with %s took the spare", what)
		}
	}
	if d.takeSpare(snap, &spec, false) != nil {
		t.Error("a VM not started now took the spare")
	}
	if d.takeSpare(snap+"-other", &spec, true) != nil {
		t.Error("a clone of another snapshot took the spare")
	}
	var wg sync.WaitGroup
	got := make(chan *spare, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := spec
			s.Name = "vm" + string(rune('a'+i))
			if sp := d.takeSpare(snap, &s, true); sp != nil {
				got <- sp
			}
		}()
	}
	wg.Wait()
	close(got)
	if n := len(got); n != 1 {
		t.Fatalf("%d VMs took the one spare", n)
	}
	if d.hasSpare(snap) {
		t.Error("the spare is still offered once taken")
	}
}

// A spare of a removed image's snapshot goes, with the wish for it; a host
// start ends the hypervisor a crash left in a spare's directory, which then
// goes with the other temporaries.
func TestSpareCleanup(t *testing.T) {
	drv := newFake("fake")
	d := newTestDaemon(t, drv)
	snap := filepath.Join(d.opts.Layout.WarmDir(), "shape-fp")
	spec := newSpec("web1")
	spec.BaseImage = "/bases/a.qcow2"
	sp := readySpare(t, d, drv, snap, spec)
	d.dropSparesOn(map[string]bool{"/bases/other.qcow2": true})
	if !d.hasSpare(snap) {
		t.Fatal("a spare of another image's snapshot was dropped")
	}
	d.dropSparesOn(map[string]bool{"/bases/a.qcow2": true})
	if d.hasSpare(snap) {
		t.Error("the spare stayed")
	}
	if _, err := os.Stat(sp.inst.Dir); !os.IsNotExist(err) {
		t.Errorf("its directory stayed: %v", err)
	}
	if _, err := os.Stat(d.spareWishFile(snap)); !os.IsNotExist(err) {
		t.Errorf("the wish stayed: %v", err)
	}

	crashed := readySpare(t, d, drv, snap, spec) // as a crash leaves it: no host knows it
	d.spares.ready = nil
	handed := filepath.Join(d.opts.Layout.VMsDir(), ".creating-"+sparePrefix+"ffff-1")
	os.Symlink(filepath.Base(crashed.inst.Dir), handed) // a handed-over spare's old path: its VM runs on
	drv.mu.Lock()
	drv.calls = nil
	drv.mu.Unlock()
	d.killInterrupted(context.Background())
	drv.mu.Lock()
	calls := slices.Clone(drv.calls)
	drv.mu.Unlock()
	if n := strings.Count(strings.Join(calls, "\n"), "delete "+crashed.inst.Spec.Name); n != 1 {
		t.Errorf("the crashed spare's hypervisor was ended %d times (once; never through a link to a VM): %v", n, calls)
	}
	d.store.CleanStale()
	if _, err := os.Stat(crashed.inst.Dir); !os.IsNotExist(err) {
		t.Errorf("the crashed spare's directory stayed: %v", err)
	}
}

func TestSpareKey(t *testing.T) {
	a := newSpec("web1")
	b := a
	b.Name, b.Image, b.NoAutoPorts = "web2", "debian", true
	if spareKey(a) != spareKey(b) {
		t.Error("a name, an image name or automatic ports make a spare unfit")
	}
	b.DiskBytes = a.DiskBytes + 1<<30
	if spareKey(a) == spareKey(b) {
		t.Error("a larger disk fits a spare")
	}
	for _, s := range []vm.Spec{{SSHKeys: []string{"k"}}, {Mounts: []vm.Mount{{HostPath: "/x", GuestPath: "/x"}}}, {Ports: []vm.PortForward{{HostPort: 1, GuestPort: 1}}}, {Rosetta: true}} {
		if spareFits(&s) {
			t.Errorf("%+v fits a spare", s)
		}
	}
}

// A spare of a snapshot new VMs no longer clone from (another QEMU since) is
// dropped: never taken, it would hold its memory and keep the snapshot from
// being pruned. Its wish waits for the snapshot that serves now, then moves
// to it.
func TestStaleSpareRetired(t *testing.T) {
	drv := newSnapDriver()
	d := newTestDaemon(t, drv)
	ctx := context.Background()
	spec := newSpec("")
	spec.BaseImage, spec.Backend, spec.CPUs, spec.MemoryMiB, spec.User = "/bases/a.qcow2", "fake", 2, 1024, "fvm"
	snapshot := func() string {
		dir, err := d.warm.Serving(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(dir, 0o700)
		if err := store.WriteJSON(filepath.Join(dir, warm.InfoFile), warm.Info{Shape: warm.ShapeKey(&spec), Image: "tiny", Base: spec.BaseImage}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	old := snapshot()
	spec.Warm = old
	sp := readySpare(t, d, drv, old, spec)
	if keep := d.retireStaleSpares(ctx); len(keep) != 1 || keep[0].Snapshot != old || !d.hasSpare(old) {
		t.Fatalf("a current snapshot's spare or wish was touched: %+v", keep)
	}

	drv.mu.Lock()
	drv.fp = strings.Repeat("e", 64) // QEMU upgraded under the running host
	drv.mu.Unlock()
	if keep := d.retireStaleSpares(ctx); len(keep) != 0 {
		t.Errorf("a spare is still wished for a snapshot that no longer serves, before its successor: %+v", keep)
	}
	if d.hasSpare(old) {
		t.Error("the stale snapshot's spare stayed")
	}
	if _, err := os.Stat(sp.inst.Dir); !os.IsNotExist(err) {
		t.Errorf("its directory stayed: %v", err)
	}
	if _, err := os.Stat(d.spareWishFile(old)); err != nil {
		t.Errorf("the wish went before a snapshot that serves was made: %v", err)
	}

	now := snapshot()
	keep := d.retireStaleSpares(ctx)
	if len(keep) != 1 || keep[0].Snapshot != now || keep[0].Spec.Warm != now {
		t.Fatalf("the wish did not move to the snapshot that serves now (%s): %+v", now, keep)
	}
	var w spareWish
	if err := store.ReadJSON(d.spareWishFile(now), &w); err != nil || w.Snapshot != now {
		t.Errorf("the moved wish on disk: %+v %v", w, err)
	}
	if _, err := os.Stat(d.spareWishFile(old)); !os.IsNotExist(err) {
		t.Errorf("the old wish stayed: %v", err)
	}

	os.RemoveAll(now) // pruned, its image gone: the wish goes
	if keep := d.retireStaleSpares(ctx); len(keep) != 0 {
		t.Errorf("a wish for a snapshot that is gone: %+v", keep)
	}
	if _, err := os.Stat(d.spareWishFile(now)); !os.IsNotExist(err) {
		t.Errorf("the wish for a snapshot that is gone stayed: %v", err)
	}
}
