package daemon

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// TestBlankVMThenISO: `fvm create --name X` makes a VM with an empty disk and
// no image; `fvm start X --iso FILE` attaches an installer (checked by
// content) and boots; a VM with an image, a file that is no ISO and a backend
// without ISO installs are refused, the VM unchanged.
func TestBlankVMThenISO(t *testing.T) {
	drv := &fakeDriver{name: "fake", running: map[string]*fakeMachine{}, caps: driver.Caps{OutlivesHost: true, InstallISO: true}}
	d := newTestDaemon(t, drv)
	ctx := context.Background()
	v, err := d.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "blank1", Blank: true, DiskBytes: 4 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := vm.ParseArch(runtime.GOARCH)
	if !v.Spec.Blank || v.Spec.Image != "" || v.Spec.BaseImage != "" || v.Spec.ISO != "" || v.Spec.Arch != host {
		t.Fatalf("blank VM %+v", v.Spec)
	}
	if _, err := os.Stat(filepath.Join(v.Dir, fakeDisk)); err != nil {
		t.Errorf("no disk: %v", err)
	}
	notISO := filepath.Join(t.TempDir(), "x.iso")
	os.WriteFile(notISO, []byte("no iso"), 0o644)
	if _, err := d.Start(ctx, "blank1", api.StartRequest{ISO: notISO}); err == nil || !strings.Contains(err.Error(), "not an ISO 9660 image") {
		t.Fatalf("start with a file that is no ISO: %v", err)
	}
	inst, _ := store.New(d.opts.Layout).Get("blank1")
	if inst.Spec.ISO != "" || !inst.Spec.Blank {
		t.Fatalf("a refused ISO changed the spec: %+v", inst.Spec)
	}
	iso := fakeISO(t)
	v, err = d.Start(ctx, "blank1", api.StartRequest{ISO: iso})
	if err != nil {
		t.Fatal(err)
	}
	if v.Spec.ISO != iso || v.Spec.Blank || v.State != vm.Running {
		t.Fatalf("after start --iso: %+v %s", v.Spec, v.State)
	}
	if inst, _ := store.New(d.opts.Layout).Get("blank1"); inst.Spec.ISO != iso {
		t.Errorf("the installer is not recorded: %+v", inst.Spec)
	}

	// A blank VM names no image.
	if _, err := d.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "img1", Image: "/x.qcow2", Blank: true}}); err == nil || !strings.Contains(err.Error(), "a blank VM has no image") {
		t.Errorf("blank with an image: %v", err)
	}
	d.Stop(ctx, "blank1", api.StopRequest{Force: true})
	// A backend that boots no installer makes no blank VM: refused at create,
	// as its Caps say (what a VM can do is answered once, when it is made).
	noISO := newTestDaemon(t, &fakeDriver{name: "fake", running: map[string]*fakeMachine{}, caps: driver.Caps{OutlivesHost: true}})
	if _, err := noISO.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "blank2", Blank: true, DiskBytes: 4 << 30}}); api.CodeOf(err) != api.CodeUnsupported || !strings.Contains(err.Error(), "cannot make a blank VM") {
		t.Errorf("a backend without ISO installs: %v", err)
	}
}
