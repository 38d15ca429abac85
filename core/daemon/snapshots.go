package daemon

// Named snapshots (fvm snapshot): the host's side. The driver freezes the
// disk and saves the memory (driver.Snapshotter, driver.LiveSnapshotter);
// the host names, describes (core/snapshot), lists, removes and restores.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/server"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/snapshot"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
	"github.com/fvmhq/fvm/core/warm"
)

var _ server.SnapshotService = (*Daemon)(nil)

// The operation a snapshot holds its VM's slot with: the VM keeps running
// (and serving exec) meanwhile.
const opSnapshot = "snapshotting"

// CreateSnapshot takes a snapshot of a VM: a running one's disk and memory
// with a short pause (its disk alone where its memory cannot be saved, with
// why), a stopped one's disk.
func (d *Daemon) CreateSnapshot(ctx context.Context, name string, req api.SnapshotRequest) (api.Snapshot, error) {
	ctx = context.WithoutCancel(ctx)
	inst, v, _, err := d.lookup(ctx, name)
	if err != nil {
		return api.Snapshot{}, err
	}
	if v.Snaps == nil {
		return api.Snapshot{}, api.Errorf(api.CodeUnsupported, "vm %q cannot be snapshotted: %s", name, v.Caps.WhyNot(driver.CapSnapshots, v.Name()))
	}
	tag := req.Tag
	if tag == "" {
		tag = snapshot.DefaultTag(time.Now())
	}
	if err := snapshot.ValidateTag(tag); err != nil {
		return api.Snapshot{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if _, err := os.Stat(snapshot.Path(inst.Dir, tag)); err == nil {
		return api.Snapshot{}, snapshotExists(name, tag)
	}
	done, err := d.beginAfter(ctx, name, opSnapshot)
	if err != nil {
		return api.Snapshot{}, err
	}
	defer releaseOnPanic(done)
	d.mu.Lock()
	r := d.entry(name).run // as it is now that the slot is ours
	d.mu.Unlock()
	tmp, err := snapshot.NewDir(inst.Dir, tag)
	if err != nil {
		done(nil)
		return api.Snapshot{}, hostError(fmt.Errorf("vm %q: snapshot: %w", name, err))
	}
	info, err := d.snap(ctx, inst, v, r, tmp, tag, true)
	var dir string
	if err == nil {
		dir, err = snapshot.Commit(tmp, info)
		if errors.Is(err, store.ErrExists) {
			err = snapshotExists(name, tag)
		}
	}
	done(nil) // a failed snapshot leaves the VM as it was
	if err != nil {
		snapshot.Remove(tmp)
		return api.Snapshot{}, err
	}
	d.log.Info("snapshot taken", "vm", name, "tag", tag, "memory", info.Memory(), "pause", time.Duration(info.PauseSeconds*float64(time.Second)).Round(time.Millisecond))
	d.events.publish(api.Event{Type: api.EventVMSnapshots, VM: name})
	return snapshot.Describe(dir, info), nil
}

func snapshotExists(name, tag string) error {
	return api.Errorf(api.CodeConflict, "vm %q already has a snapshot %q: pick another tag, or remove it first (`fvm snapshot rm %s %s`)", name, tag, name, tag)
}

// snap takes a snapshot of the VM into dir (new and empty), its slot held:
// a running VM (r) with its memory when withMemory and it can, its disk only
// otherwise (the notice says why); a stopped VM its disk (and a suspended
// one's saved memory). It returns the snapshot's description.
func (d *Daemon) snap(ctx context.Context, inst *store.Instance, v *driver.VM, r *driver.Run, dir, tag string, withMemory bool) (snapshot.Info, error) {
	var res driver.SnapshotResult
	var why string
	var err error
	switch {
	case r != nil && r.Snap == nil:
		return snapshot.Info{}, api.Errorf(api.CodeUnsupported, "vm %q cannot be snapshotted while it runs: %s", inst.Spec.Name, v.Caps.WhyNot(driver.CapSnapshots, v.Name()))
	case r != nil:
		memory := withMemory && r.Suspend != nil // Caps.SaveState
		if !memory && withMemory {
			why = "disk only: " + v.Caps.WhyNot(driver.CapSaveState, v.Name())
		}
		res, err = r.Snap.Snapshot(ctx, dir, memory)
	default:
		res, err = v.Snaps.Snapshot(ctx, inst, dir)
		if err == nil && !res.Memory {
			why = "disk only: the VM was not running"
		}
	}
	if err != nil {
		return snapshot.Info{}, err
	}
	pub, err := store.ReadFile(inst.Path(store.HostKeyPubFile))
	if err != nil {
		return snapshot.Info{}, fmt.Errorf("vm %q: its host key: %w", inst.Spec.Name, err)
	}
	iid, err := store.ReadFile(inst.Path(store.InstanceIDFile))
	if err != nil {
		return snapshot.Info{}, fmt.Errorf("vm %q: its instance id: %w", inst.Spec.Name, err)
	}
	s := &inst.Spec
	return snapshot.Info{
		Info: warm.Info{
			Shape: warm.ShapeKey(s), Fingerprint: res.Fingerprint, Backend: v.Name(), Image: s.Image, Base: s.BaseImage, Arch: s.Arch,
			CPUs: s.CPUs, MemoryMiB: s.MemoryMiB, User: s.User, DiskBytes: s.DiskBytes,
			HostKeyPublic: strings.TrimSpace(string(pub)), InstanceID: strings.TrimSpace(string(iid)),
			CreatedAt: time.Now().UTC(), Hostname: s.Name, DiskOnly: !res.Memory,
		},
		Tag: tag, VM: s.Name, PauseSeconds: res.Pause.Seconds(), Notice: driver.JoinNotices(why, res.Notice),
	}, nil
}

// Snapshots lists a VM's snapshots, oldest first.
func (d *Daemon) Snapshots(ctx context.Context, name string) ([]api.Snapshot, error) {
	inst, err := d.get(name)
	if err != nil {
		return nil, err
	}
	out, err := snapshot.List(inst.Dir)
	if err != nil {
		return nil, hostError(fmt.Errorf("vm %q: list its snapshots: %w", name, err))
	}
	return out, nil
}

// findSnapshot is a VM's snapshot by tag, or a not_found error saying how to list them.
func findSnapshot(inst *store.Instance, tag string) (string, snapshot.Info, error) {
	name := inst.Spec.Name
	if err := snapshot.ValidateTag(tag); err != nil {
		return "", snapshot.Info{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	dir := snapshot.Path(inst.Dir, tag)
	info, err := snapshot.Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", snapshot.Info{}, api.Errorf(api.CodeNotFound, "vm %q has no snapshot %q: see `fvm snapshot ls %s`", name, tag, name)
	}
	if err != nil {
		return "", snapshot.Info{}, hostError(fmt.Errorf("vm %q: snapshot %q: %w", name, tag, err))
	}
	return dir, info, nil
}

// RemoveSnapshot deletes a snapshot; its disk layer goes once nothing reads
// it (the answer says what was kept and why).
func (d *Daemon) RemoveSnapshot(ctx context.Context, name, tag string) (api.Removed, error) {
	ctx = context.WithoutCancel(ctx)
	inst, err := d.get(name)
	if err != nil {
		return api.Removed{}, err
	}
	dir, _, err := findSnapshot(inst, tag)
	if err != nil {
		return api.Removed{}, err
	}
	done, err := d.begin(name, opSnapshot)
	if err != nil {
		return api.Removed{}, err
	}
	defer releaseOnPanic(done)
	before := d.vmLayers(inst.Dir)
	if err := snapshot.Remove(dir); err != nil {
		done(nil)
		return api.Removed{}, hostError(fmt.Errorf("vm %q: remove snapshot %q: %w", name, tag, err))
	}
	before = minus(before, d.vmLayers(inst.Dir)) // what only the snapshot read of this VM's
	_, freed, perr := d.pruneLayers(ctx)
	done(nil)
	d.events.publish(api.Event{Type: api.EventVMSnapshots, VM: name})
	out := api.Removed{Kept: d.keptNotes(before), Freed: freed}
	if perr != nil {
		out.Kept = append(out.Kept, fmt.Sprintf("unused layers were not all removed (%v): `fvm image prune` tries again", perr))
	}
	return out, nil
}

// vmLayers are the frozen layers the VM in dir reads (its disk, its
// snapshots, its origin).
func (d *Daemon) vmLayers(dir string) []string {
	var files []string
	for _, drv := range d.opts.Drivers {
		fs, _ := drv.BasesInUse(dir)
		files = append(files, fs...)
	}
	return d.layersIn(files)
}

func minus(a, b []string) []string {
	drop := map[string]bool{}
	for _, x := range b {
		drop[x] = true
	}
	var out []string
	for _, x := range a {
		if !drop[x] {
			out = append(out, x)
		}
	}
	return out
}

// RestoreSnapshot brings a VM back to one of its snapshots: a new disk on the
// snapshot's frozen disk and, with memory, the VM running where it was (its
// processes, tmpfs; its clock corrected), else booted from that disk. What
// the VM did since is discarded; a running VM needs Force.
func (d *Daemon) RestoreSnapshot(ctx context.Context, name, tag string, req api.RestoreRequest) (api.VM, error) {
	ctx = context.WithoutCancel(ctx)
	inst, v, r, err := d.lookup(ctx, name)
	if err != nil {
		return api.VM{}, err
	}
	dir, info, err := findSnapshot(inst, tag)
	if err != nil {
		return api.VM{}, err
	}
	if v.Snaps == nil {
		return api.VM{}, api.Errorf(api.CodeUnsupported, "vm %q cannot be restored from a snapshot: %s", name, v.Caps.WhyNot(driver.CapSnapshots, v.Name()))
	}
	if r != nil && !req.Force {
		return api.VM{}, api.Errorf(api.CodeConflict, "vm %q is running: restoring snapshot %s discards everything it did since (disk and memory): add --force", name, tag)
	}
	done, err := d.begin(name, "restoring")
	if err != nil {
		return api.VM{}, err
	}
	defer releaseOnPanic(done)
	if err := d.stop(ctx, name, api.StopRequest{Force: true}); err != nil {
		done(err)
		return api.VM{}, err
	}
	if err := v.Snaps.Revert(ctx, inst, dir); err != nil {
		done(err)
		return api.VM{}, hostError(err)
	}
	d.pruneLayers(ctx) // the discarded top's layers, if nothing else reads them
	notice := fmt.Sprintf("everything %s did since snapshot %s (%s) was discarded", name, tag, info.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	var opts driver.StartOptions
	switch {
	case !info.Memory():
		notice += "; the snapshot has no memory: booted from its disk"
	case v.States == nil:
		notice += "; " + v.Caps.WhyNot(driver.CapSaveState, v.Name()) + ": booted from its disk"
	default:
		opts = driver.StartOptions{Clone: dir, Restore: true}
		if v.Warm != nil { // a state that no longer fits would only fail to load
			if fp, err := v.Warm.WarmFingerprint(ctx, &inst.Spec); err == nil && fp != info.Fingerprint {
				opts = driver.StartOptions{}
				notice += "; the snapshot's memory was saved by another QEMU, firmware or fvm: booted from its disk"
			}
		}
	}
	m, bootNotice, err := d.boot(ctx, inst, v, opts, notice, time.Now())
	done(err)
	if err != nil {
		return api.VM{}, err
	}
	d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: vm.Running})
	out := d.describe(ctx, inst)
	out.Notice = driver.JoinNotices(bootNotice, m.Info().Notice)
	if m.Info().Boot == driver.BootRestored {
		d.log.Info("snapshot restored", "vm", name, "tag", tag)
	}
	return out, nil
}
