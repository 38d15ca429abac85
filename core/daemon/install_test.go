package daemon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

func newTestDaemon(t *testing.T, drv driver.Driver) *Daemon {
	t.Helper()
	t.Setenv("FVM_HOME", t.TempDir())
	return New(Options{Layout: store.DefaultLayout(), Drivers: []driver.Driver{drv}, Version: "test"})
}

// fakeISO writes a file that is an ISO 9660 image by content (the volume descriptor magic).
func fakeISO(t *testing.T) string {
	t.Helper()
	b := make([]byte, 0x9000)
	copy(b[0x8001:], "CD001")
	path := filepath.Join(t.TempDir(), "installer.iso")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCreateFromISO(t *testing.T) {
	d := newTestDaemon(t, &fakeDriver{running: map[string]*fakeMachine{}})
	ctx := context.Background()
	iso := fakeISO(t)
	v, err := d.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "inst1", ISO: iso, DiskBytes: 4 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := vm.ParseArch(runtime.GOARCH)
	if v.Spec.ISO != iso || v.Spec.BaseImage != "" || v.Spec.Image != "" || v.Spec.Arch != host || v.Spec.DiskBytes != 4<<30 {
		t.Fatalf("created %+v", v.Spec)
	}
	for _, f := range []string{store.SeedFile, store.HostKeyFile, store.KnownHostsFile, fakeDisk} {
		if _, err := os.Stat(filepath.Join(v.Dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if ud := seedUserData(t, filepath.Join(v.Dir, store.SeedFile)); strings.Contains(ud, "autoinstall:") {
		t.Errorf("plain ISO VM got an autoinstall seed:\n%s", ud)
	}

	v, err = d.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "inst2", ISO: iso, AutoInstall: true}})
	if err != nil {
		t.Fatal(err)
	}
	ud := seedUserData(t, filepath.Join(v.Dir, store.SeedFile))
	if !strings.HasPrefix(ud, "#cloud-config\nautoinstall:\n") || !strings.Contains(ud, "install-server: true") {
		t.Errorf("auto-install seed:\n%s", ud)
	}
}

func seedUserData(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	fs, err := iso9660.Read(file.New(f, true), st.Size(), 0, 2048)
	if err != nil {
		t.Fatal(err)
	}
	r, err := fs.OpenFile("/user-data", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	return string(b)
}

// TestCreateFromBadISO: one-line errors that say what to do, and nothing left behind.
func TestCreateFromBadISO(t *testing.T) {
	d := newTestDaemon(t, &fakeDriver{running: map[string]*fakeMachine{}})
	ctx := context.Background()
	notISO := filepath.Join(t.TempDir(), "disk.iso")
	os.WriteFile(notISO, []byte("QFI\xfb qcow2 really"), 0o644)
	for _, tc := range []struct {
		spec vm.Spec
		want string
	}{
		{vm.Spec{Name: "bad1", ISO: "/no/such/file.iso"}, "no such file"},
		{vm.Spec{Name: "bad2", ISO: notISO}, "not an ISO 9660 image (its content is qcow2)"},
		{vm.Spec{Name: "bad3", ISO: t.TempDir()}, "not a regular file"},
		{vm.Spec{Name: "bad4", ISO: fakeISO(t), Image: "tiny"}, "give one"},
		{vm.Spec{Name: "bad5", ISO: "relative.iso"}, "absolute"},
		{vm.Spec{Name: "bad6", Image: "tiny", AutoInstall: true}, "--auto-install needs"},
	} {
		_, err := d.Create(ctx, api.CreateRequest{Spec: tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line with %q", tc.spec.Name, err, tc.want)
		}
		if api.CodeOf(err) != api.CodeInvalid {
			t.Errorf("%s: code %q, want invalid", tc.spec.Name, api.CodeOf(err))
		}
	}
	if entries, _ := os.ReadDir(d.opts.Layout.VMsDir()); len(entries) != 0 {
		t.Errorf("bad ISOs left VM dirs: %v", entries)
	}
}

// installDriver's first boot of a VM is an unattended install that finishes.
type installDriver struct {
	*fakeDriver
	starts atomic.Int32
}

type installMachine struct{ *fakeMachine }

func (installMachine) InstallFinished() bool { return true }

func (f *installDriver) Start(ctx context.Context, inst *store.Instance, o driver.StartOptions) (driver.Machine, error) {
	m, err := f.fakeDriver.Start(ctx, inst, o)
	if err == nil && f.starts.Add(1) == 1 {
		return installMachine{m.(*fakeMachine)}, nil
	}
	return m, err
}

func TestBootFromDiskAfterInstall(t *testing.T) {
	drv := &installDriver{fakeDriver: &fakeDriver{running: map[string]*fakeMachine{}}}
	d := newTestDaemon(t, drv)
	ctx := context.Background()
	if _, err := d.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "auto1", ISO: fakeISO(t), AutoInstall: true}, Start: true}); err != nil {
		t.Fatal(err)
	}
	drv.mu.Lock()
	installer := drv.running["auto1"]
	drv.mu.Unlock()
	installer.Kill() // the installer powers the VM off by itself
	deadline := time.Now().Add(5 * time.Second)
	for drv.starts.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if drv.starts.Load() != 2 {
		t.Fatalf("%d boots, want the install boot and one from the disk", drv.starts.Load())
	}
	v, err := d.Get(ctx, "auto1")
	for err == nil && v.State == vm.Starting && time.Now().Before(deadline) { // the second boot's slot is released just after its Start
		time.Sleep(10 * time.Millisecond)
		v, err = d.Get(ctx, "auto1")
	}
	if err != nil || v.State != vm.Running || v.Error != "" {
		t.Fatalf("after install: %+v %v", v, err)
	}
	// A VM whose end was asked for is not booted again.
	if _, err := d.Stop(ctx, "auto1", api.StopRequest{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if drv.starts.Load() != 2 {
		t.Fatalf("booted again after a stop: %d boots", drv.starts.Load())
	}
}

func TestStopDuringInstallDoesNotReboot(t *testing.T) {
	drv := &installDriver{fakeDriver: &fakeDriver{running: map[string]*fakeMachine{}}}
	d := newTestDaemon(t, drv)
	ctx := context.Background()
	if _, err := d.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "auto2", ISO: fakeISO(t), AutoInstall: true}, Start: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stop(ctx, "auto2", api.StopRequest{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := drv.starts.Load(); n != 1 {
		t.Fatalf("%d boots after a stop during the install, want 1", n)
	}
}
