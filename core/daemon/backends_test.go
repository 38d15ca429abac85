package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// twoBackends serves a host with two fake backends, "first" preferred, plus a
// known backend this host lacks ("vz"), and the images tiny and other.
func twoBackends(t *testing.T) (*host, *fakeDriver, *fakeDriver) {
	t.Helper()
	first, second := newFake("first"), newFake("second")
	first.refuse = "other" // auto falls through to second for this image
	h := startHostWith(t, Options{
		Drivers:     []driver.Driver{first, second},
		Unavailable: []driver.Unavailable{{Name: "vz", Reason: "vz needs macOS 13+"}},
	}, first)
	h.addImage(t)
	h.addNamedImage(t, "other")
	return h, first, second
}

func (h *host) addNamedImage(t *testing.T, name string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name+".raw")
	b := make([]byte, 1<<20)
	b[0] = byte(len(name)) // another digest than tiny's
	b[510], b[511] = 0x55, 0xAA
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (image.Registry{Layout: h.layout}).ImportFile(context.Background(), src, name, image.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestBackendPerVM(t *testing.T) {
	h, first, second := twoBackends(t)
	ctx := context.Background()

	create := func(name, image, backend string) api.VM {
		t.Helper()
		s := newSpec(name)
		s.Image, s.Backend = image, backend
		v, err := h.c.Create(ctx, api.CreateRequest{Spec: s})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return v
	}
	if v := create("a", "tiny", ""); v.Spec.Backend != "first" || v.Backend != "first" {
		t.Fatalf("auto picked %q, want the preferred backend", v.Spec.Backend)
	}
	if v := create("b", "tiny", "second"); v.Spec.Backend != "second" {
		t.Fatalf("--backend second gave %q", v.Spec.Backend)
	}
	if v := create("c", "other", "auto"); v.Spec.Backend != "second" {
		t.Fatalf("auto for an image the preferred backend refuses gave %q", v.Spec.Backend)
	}
	s := newSpec("d")
	s.Image, s.Backend = "other", "first"
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: s}); api.CodeOf(err) != api.CodeUnsupported || !strings.Contains(err.Error(), "first cannot run other") {
		t.Fatalf("explicit backend that refuses: %v", err)
	}

	// Each VM is started, listed, stopped and removed through its own backend.
	for _, n := range []string{"a", "b"} {
		v, err := h.c.Start(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if v.Accel != v.Spec.Backend+"-accel" || v.PID != 4242 || v.Notice != "fake notice" || v.StartedAt == nil {
			t.Fatalf("start %s: %+v", n, v)
		}
	}
	list, err := h.c.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list %v %v", list, err)
	}
	for _, v := range list {
		want := map[string]string{"a": "first", "b": "second", "c": "second"}[v.Spec.Name]
		if v.Backend != want {
			t.Errorf("%s listed on backend %q, want %q", v.Spec.Name, v.Backend, want)
		}
	}
	if _, err := h.c.Stop(ctx, "b", api.StopRequest{TimeoutSeconds: 2}); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Remove(ctx, "b", false); err != nil {
		t.Fatal(err)
	}
	if got := second.callsFor("b"); !slices.Equal(got, []string{"create b", "start b", "delete b"}) {
		t.Errorf("second backend saw %v for b", got)
	}
	if got := first.callsFor("b"); got != nil {
		t.Errorf("first backend saw %v for a VM of the second", got)
	}
	if got := first.callsFor("a"); !slices.Equal(got, []string{"create a", "start a"}) {
		t.Errorf("first backend saw %v for a", got)
	}
	if v, err := h.c.Get(ctx, "a"); err != nil || v.State != vm.Running {
		t.Fatalf("a after removing b: %+v %v", v.State, err)
	}
}

func TestUnavailableBackend(t *testing.T) {
	h, _, _ := twoBackends(t)
	ctx := context.Background()
	s := newSpec("mac")
	s.Backend = "vz"
	_, err := h.c.Create(ctx, api.CreateRequest{Spec: s})
	if api.CodeOf(err) != api.CodeUnsupported || !strings.Contains(err.Error(), "vz needs macOS 13+") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("--backend vz on a host without it: %v", err)
	}
	s.Backend = "xen"
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: s}); api.CodeOf(err) != api.CodeInvalid || !strings.Contains(err.Error(), "first, second") {
		t.Fatalf("unknown backend: %v", err)
	}
	if h.layoutHasVM("mac") {
		t.Fatal("a refused backend left a VM dir")
	}
	info, err := h.c.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range info.Backends {
		names = append(names, b.Name)
		if b.Name == "vz" && (b.Available || b.Reason == "") {
			t.Errorf("vz reported %+v", b)
		}
	}
	if !slices.Equal(names, []string{"first", "second", "vz"}) {
		t.Errorf("backends %v, want preference order then the unavailable", names)
	}

	// A VM made elsewhere on a backend this host lacks: listed with the reason,
	// not started, still removable.
	h.writeForeignVM(t, "elsewhere", "vz")
	v, err := h.c.Get(ctx, "elsewhere")
	if err != nil || v.State != vm.Error || !strings.Contains(v.Error, "vz needs macOS 13+") {
		t.Fatalf("foreign vm: %+v %v", v, err)
	}
	if _, err := h.c.Start(ctx, "elsewhere"); api.CodeOf(err) != api.CodeUnsupported {
		t.Fatalf("start on a missing backend: %v", err)
	}
	if err := h.c.Remove(ctx, "elsewhere", false); err != nil {
		t.Fatalf("rm of a vm on a missing backend: %v", err)
	}
	if h.layoutHasVM("elsewhere") {
		t.Fatal("rm left the dir")
	}
}

func (h *host) writeForeignVM(t *testing.T, name, backend string) {
	t.Helper()
	spec := newSpec(name)
	spec.Backend, spec.Arch, spec.CPUs, spec.MemoryMiB, spec.User = backend, vm.AMD64, 1, 512, "fvm"
	st := store.New(h.layout)
	inst, err := st.Create(spec)
	if err == nil {
		err = st.Commit(inst)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestEphemeralBackend: a driver whose VMs do not outlive the host is never
// asked to re-adopt, and its running VMs are stopped when the host exits.
func TestEphemeralBackend(t *testing.T) {
	eph := newFake("eph")
	eph.caps = driver.Caps{OutlivesHost: false}
	h := startHostWith(t, Options{Drivers: []driver.Driver{eph}}, eph)
	h.addImage(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("e"), Start: true}); err != nil {
		t.Fatal(err)
	}
	m := eph.running["e"]
	h.stop()
	select {
	case <-m.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the host exited and left a VM of a backend that does not outlive it running")
	}
}

// TestPruneAsksDrivers: a base read by a VM whose spec is unreadable is kept,
// because its driver says its disk reads it.
func TestPruneAsksDrivers(t *testing.T) {
	h, _, _ := twoBackends(t)
	ctx := context.Background()
	s := newSpec("keeper")
	s.Backend = "second"
	v, err := h.c.Create(ctx, api.CreateRequest{Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	base := v.Spec.BaseImage
	if err := os.WriteFile(filepath.Join(v.Dir, store.SpecFile), []byte("{truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.RemoveImage(ctx, "tiny", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.PruneImages(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(base); err != nil {
		t.Fatalf("prune removed the base a VM's disk reads: %v", err)
	}
}

// TestDaemonImportsNoDriver: the host logic reaches backends only through
// core/driver; concrete drivers are wired in by core/host.
func TestDaemonImportsNoDriver(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/fvmhq/fvm/core/daemon").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v: %s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/fvmhq/fvm/core/driver") {
		t.Fatalf("go list returned no core/driver: %q", out)
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/fvmhq/fvm/core/driver/") || dep == "github.com/fvmhq/fvm/core/host" {
			t.Errorf("core/daemon imports %s; backends are wired in by core/host", dep)
		}
	}
}
