package vz

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// TestSnapshotStopped: a stopped vz VM's snapshot is clones of its files; a
// revert brings them back (with a saved state, which the next start
// resumes); a clone's disk is a clone of the snapshot's, grown to its size.
func TestSnapshotStopped(t *testing.T) {
	d := testDriver("14.5", vm.ARM64, m2Caps)
	ctx := context.Background()
	inst := &store.Instance{Dir: t.TempDir(), Spec: vm.Spec{Name: "web1", DiskBytes: 4 << 20}}
	p := pathsOf(inst.Dir)
	disk := bytes.Repeat([]byte("v1"), 1<<19)
	os.WriteFile(p.disk, disk, 0o600)
	os.WriteFile(inst.Path(store.EFIVarsFile), []byte("vars-1"), 0o600)
	os.WriteFile(inst.Path(MachineIDFile), []byte("id-1"), 0o600)
	os.WriteFile(p.state, []byte("state-1"), 0o600) // suspended
	dir := t.TempDir()
	res, err := d.Snapshot(ctx, inst, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Memory {
		t.Error("a suspended VM's snapshot has no memory")
	}
	for f, want := range map[string]string{DiskFile: string(disk), store.EFIVarsFile: "vars-1", MachineIDFile: "id-1", StateFile: "state-1"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != want {
			t.Errorf("snapshot %s: %.20q", f, b)
		}
	}
	os.WriteFile(p.disk, []byte("v2"), 0o600)
	os.WriteFile(inst.Path(store.EFIVarsFile), []byte("vars-2"), 0o600)
	os.Remove(p.state)
	if err := d.Revert(ctx, inst, dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p.disk); !bytes.Equal(b, disk) {
		t.Error("revert did not bring the disk back")
	}
	if b, _ := os.ReadFile(inst.Path(store.EFIVarsFile)); string(b) != "vars-1" || !d.HasSavedState(inst) {
		t.Errorf("revert: vars %q, saved state %v", b, d.HasSavedState(inst))
	}
	clone := &store.Instance{Dir: t.TempDir(), Spec: vm.Spec{Name: "web2", DiskBytes: 8 << 20}}
	if err := d.Create(ctx, clone, driver.CreateInput{Clone: dir, Seed: []byte("seed")}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(pathsOf(clone.Dir).disk)
	if err != nil || st.Size() != 8<<20 {
		t.Fatalf("clone disk: %v %v", st, err)
	}
	if _, err := os.Stat(clone.Path(MachineIDFile)); !os.IsNotExist(err) {
		t.Error("a clone took its source's machine identifier")
	}
}
