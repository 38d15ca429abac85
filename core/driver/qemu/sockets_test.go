package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// TestStartInADeepDirectory: a VM whose directory is too deep for socket
// addresses (a Mac's ~/Library/Application Support/fvm/vms/NAME with a long user
// name) starts, its QEMU binding every socket through the short alias in the
// run dir; the sockets are in the VM's directory. Without an alias dir the
// start fails saying why and what to do.
func TestStartInADeepDirectory(t *testing.T) {
	d := fakeDriver(t, "ok")
	dir := filepath.Join(t.TempDir(), "Users", strings.Repeat("u", 24), "Library", "Application Support", "fvm", "vms", strings.Repeat("n", 32))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	inst := &store.Instance{Dir: dir, Spec: vm.Spec{Name: "deep", Image: "test", Arch: vm.AMD64, CPUs: 1, MemoryMiB: 256, DiskBytes: 2 << 30, User: "fvm", Accel: "tcg"}}
	os.WriteFile(inst.Path(DiskFile), []byte("disk"), 0o600)
	if len(inst.Path(SerialSocket)) <= store.MaxSocketPath {
		t.Fatalf("test dir is not deep enough: %d bytes", len(inst.Path(SerialSocket)))
	}
	reap(t, inst)

	store.SetSocketAliasDir("")
	if _, err := d.Start(context.Background(), inst, driver.StartOptions{}); err == nil || !strings.Contains(err.Error(), "FVM_HOME") {
		t.Fatalf("start without an alias dir: %v, want the length error naming FVM_HOME", err)
	}

	run := filepath.Join(t.TempDir(), "run")
	store.SetSocketAliasDir(filepath.Join(run, store.SocketAliasDirName))
	defer store.SetSocketAliasDir("")
	m, err := d.Start(context.Background(), inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	for _, s := range []string{QMPSocket, VNCSocket, SerialSocket} {
		if st, err := os.Stat(inst.Path(s)); err != nil || st.Mode()&os.ModeSocket == 0 {
			t.Errorf("%s is not a socket in the VM's directory: %v", s, err)
		}
		if p := inst.SocketPath(s); !strings.HasPrefix(p, run) || len(p) > store.MaxSocketPath {
			t.Errorf("%s is bound at %s, not a short path in the run dir", s, p)
		}
	}
	if st, err := m.State(context.Background()); err != nil || st != vm.Running {
		t.Errorf("state %s, %v: QMP through the alias", st, err)
	}
}
