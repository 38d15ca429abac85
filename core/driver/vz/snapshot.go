package vz

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
)

// Snapshots on vz (driver.Snapshotter, driver.LiveSnapshotter). vz disks are
// raw files cloned with APFS clonefile, so a snapshot is a directory of
// clones: DiskFile (instant, sharing every block with the VM's disk until
// either writes), the firmware variables, the machine identifier and, with
// memory (macOS 14+, Apple silicon), StateFile, saved while the VM is paused.
// A running VM's helper does it (OpSnapshot: pause, save, clone, resume); a
// stopped VM's files are cloned here. There are no shared layers to keep: a
// clone owns its blocks. vz makes no warm clones (Caps): clones of a snapshot
// boot cold from its disk, under their own machine identifier.

// CopySnapshotFiles clones the disk of the VM of plan and copies its
// firmware variables and machine identifier into dir (the helper runs it
// with the VM paused).
func CopySnapshotFiles(ctx context.Context, plan Plan, dir string) error {
	if len(plan.Disks) == 0 {
		return errors.New("the VM has no disk")
	}
	if err := cloneAs(ctx, plan.Disks[0].Path, filepath.Join(dir, DiskFile)); err != nil {
		return err
	}
	for _, f := range []string{plan.Boot.EFIVariableStore, plan.Platform.MachineIdentifier} {
		if err := copyIfThere(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			return err
		}
	}
	return nil
}

// maxSnapshotFile bounds the small files a snapshot copies (vz's firmware
// variable store is well under a MiB).
const maxSnapshotFile = 64 << 20

// cloneAs clones src to dst at src's size.
func cloneAs(ctx context.Context, src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	_, err = CloneDisk(ctx, src, dst, st.Size())
	return err
}

// copyIfThere copies src (a small file: firmware variables, the machine
// identifier) to dst; a missing src (made on the VM's first boot, which has
// not happened) is not an error. src is read as a state file: a regular
// file, maxSnapshotFile at most.
func copyIfThere(src, dst string) error {
	b, err := store.ReadFileLimited(src, maxSnapshotFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(dst, b, 0o600)
}

// Snapshot clones a stopped VM's disk and files into dir; a suspended VM's
// saved state goes too (driver.Snapshotter).
func (d *Driver) Snapshot(ctx context.Context, inst *store.Instance, dir string) (driver.SnapshotResult, error) {
	p := pathsOf(inst.Dir)
	f, _ := loadFacts(p.dir)
	if pid := proc.ReadPIDFile(p.pid); isOurHelper(pid, f.Helper, p.dir) {
		return driver.SnapshotResult{}, fmt.Errorf("vm %q: snapshot: it is running: its helper takes the snapshot", inst.Spec.Name)
	}
	plan := Plan{Disks: []Disk{{Path: p.disk}}, Boot: Boot{EFIVariableStore: inst.Path(store.EFIVarsFile)}, Platform: Platform{MachineIdentifier: inst.Path(MachineIDFile)}}
	if err := CopySnapshotFiles(ctx, plan, dir); err != nil {
		return driver.SnapshotResult{}, fmt.Errorf("vm %q: snapshot: %w", inst.Spec.Name, err)
	}
	var res driver.SnapshotResult
	if isFile(p.state) {
		if err := cloneAs(ctx, p.state, filepath.Join(dir, StateFile)); err != nil {
			return driver.SnapshotResult{}, fmt.Errorf("vm %q: snapshot its saved state: %w", inst.Spec.Name, err)
		}
		res.Memory = true
	}
	return res, nil
}

// Revert gives a stopped VM the snapshot's disk and files again (clones),
// and its saved state when it has one, which the next Start resumes; what
// the VM wrote since and a saved state of its own are discarded.
func (d *Driver) Revert(ctx context.Context, inst *store.Instance, dir string) error {
	p := pathsOf(inst.Dir)
	f, _ := loadFacts(p.dir)
	if pid := proc.ReadPIDFile(p.pid); isOurHelper(pid, f.Helper, p.dir) {
		return fmt.Errorf("vm %q: restore: it is running: stop it first", inst.Spec.Name)
	}
	fail := func(err error) error { return fmt.Errorf("vm %q: restore: %w", inst.Spec.Name, err) }
	if err := d.DiscardState(inst); err != nil {
		return fail(err)
	}
	if err := cloneAs(ctx, filepath.Join(dir, DiskFile), p.disk); err != nil {
		return fail(err)
	}
	for _, n := range []string{store.EFIVarsFile, MachineIDFile} {
		if err := copyIfThere(filepath.Join(dir, n), inst.Path(n)); err != nil {
			return fail(err)
		}
	}
	if s := filepath.Join(dir, StateFile); isFile(s) {
		if err := cloneAs(ctx, s, p.state); err != nil {
			return fail(err)
		}
	}
	return nil
}

// PruneLayers: vz keeps no shared layers (its snapshots are clones).
func (d *Driver) PruneLayers(func() (map[string]bool, error)) ([]string, int64, error) {
	return nil, 0, nil
}

// createClone makes a clone's disk from a snapshot's (a clone of it, grown to
// the VM's size); its firmware variables and machine identifier are its own,
// made on its first boot (it boots cold).
func (d *Driver) createClone(ctx context.Context, inst *store.Instance, snapshot string) error {
	p := pathsOf(inst.Dir)
	src := filepath.Join(snapshot, DiskFile)
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("vm %q: the snapshot's disk: %w", inst.Spec.Name, err)
	}
	_, err = CloneDisk(ctx, src, p.disk, max(inst.Spec.DiskBytes, st.Size()))
	return err
}

// Snapshot has the helper pause the VM, clone its disk and files into dir
// and, with memory, save its state there, then resume it
// (driver.LiveSnapshotter).
func (m *Machine) Snapshot(ctx context.Context, dir string, memory bool) (driver.SnapshotResult, error) {
	if m.exited() {
		return driver.SnapshotResult{}, fmt.Errorf("vm %q: not running", m.name)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return driver.SnapshotResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, suspendWait)
	defer cancel()
	r, err := callControlReq(ctx, m.p.sock, ControlRequest{Op: OpSnapshot, Dir: abs, Memory: memory})
	if err != nil {
		return driver.SnapshotResult{}, fmt.Errorf("vm %q: snapshot: %w", m.name, err)
	}
	return driver.SnapshotResult{Memory: memory, Pause: time.Duration(r.PauseMS) * time.Millisecond}, nil
}

var (
	_ driver.Snapshotter     = (*Driver)(nil)
	_ driver.LiveSnapshotter = (*Machine)(nil)
)
