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
