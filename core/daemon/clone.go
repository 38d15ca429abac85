package daemon

// Forks (fvm clone, fvm run --from): a new VM from one of a VM's snapshots,
// or from one taken now. The clone's disk is an overlay on the snapshot's
// frozen layer (shared by every clone), its first start restores the
// snapshot's memory and re-identifies it as a warm clone is (core/warm), or
// boots cold under its own identity when the snapshot has no memory.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/snapshot"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
	"github.com/fvmhq/fvm/core/warm"
)

// opClone holds the source VM's slot while a clone is made of it: the source
// runs on, and is neither removed nor restored under the clone.
const opClone = "cloning"

// Clone makes a VM from src's snapshot req.Tag, or from a snapshot of src
// taken now (its memory too when src runs and the clone can restore it), and
// starts it unless req.NoStart.
func (d *Daemon) Clone(ctx context.Context, src string, req api.CloneRequest) (api.VM, error) {
	ctx = context.WithoutCancel(ctx)
	sinst, sv, _, err := d.lookup(ctx, src)
	if err != nil {
		return api.VM{}, err
	}
	if sv.Snaps == nil {
		return api.VM{}, api.Errorf(api.CodeUnsupported, "vm %q cannot be cloned: %s", src, sv.Caps.WhyNot(driver.CapSnapshots, sv.Name()))
	}
	if sinst.Spec.ISO != "" || sinst.Spec.AutoInstall {
		return api.VM{}, api.Errorf(api.CodeUnsupported, "vm %q was installed from an ISO: fvm cannot give a copy of it an identity of its own (its system may not run cloud-init); snapshot and restore it instead", src)
	}
	var sdir string
	if req.Tag != "" {
		if sdir, _, err = findSnapshot(sinst, req.Tag); err != nil {
			return api.VM{}, err
		}
	}
	name := req.Name
	if name == "" {
		name = vm.GenerateName(d.store.Exists)
	}
	if err := vm.ValidateName(name); err != nil {
		return api.VM{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if d.store.Exists(name) {
		return api.VM{}, errExists(name)
	}
	spec := cloneSpec(sinst.Spec, name, d.opts.Layout.InstanceDir(name))
	var notice string
	if len(sinst.Spec.Ports) > 0 {
		notice = fmt.Sprintf("the clone has none of %s's -p forwards (their host ports are %s's)", src, src)
	}
	cv := driver.Bind(ctx, sv.Driver, &spec)

	sdone, err := d.beginAfter(ctx, src, opClone)
	if err != nil {
		return api.VM{}, err
	}
	defer releaseOnPanic(sdone)
	done, err := d.begin(name, "creating")
	if err != nil {
		sdone(nil)
		return api.VM{}, err
	}
	defer releaseOnPanic(done)
	inst, cv, info, err := d.makeClone(ctx, sinst, sv, cv, spec, sdir)
	sdone(nil)
	done(nil)
	if err != nil {
		d.forget(name)
		return api.VM{}, err
	}
	d.mu.Lock()
	d.entry(name).vm = cv
	d.mu.Unlock()
	d.events.publish(api.Event{Type: api.EventVMCreated, VM: name, State: vm.Stopped})
	if !info.Memory() {
		notice = driver.JoinNotices(notice, "its snapshot has no memory ("+info.Notice+"): it boots cold under its own identity")
	}
	d.log.Info("clone made", "vm", name, "from", src, "tag", info.Tag, "memory", info.Memory())
	if req.NoStart {
		out := d.describe(ctx, inst)
		out.Notice = notice
		return out, nil
	}
	out, err := d.Start(ctx, name, api.StartRequest{})
	out.Notice = driver.JoinNotices(notice, out.Notice)
	return out, err
}

// cloneSpec is the spec of a clone of a VM: the same shape, image and
// backend, its own name, no -p forwards (their host ports are taken), and its
// origin (the snapshot it starts from) in its own directory.
func cloneSpec(s vm.Spec, name, dir string) vm.Spec {
	c := s
	c.Name, c.Ports, c.Warm = name, nil, dir+string(os.PathSeparator)+store.OriginDir
	c.Created = time.Now().UTC().Truncate(time.Second)
	c.SSHKeys = append([]string(nil), s.SSHKeys...)
	c.Mounts = append([]vm.Mount(nil), s.Mounts...)
	return c
}

// makeClone makes the clone's directory, both slots held: its origin (a
// copy of src's snapshot sdir as links, or a snapshot of src taken into it
// now), its identity and seed, and its disk on the origin's frozen disk. It
// returns the clone's driver binding as asked with the origin in place.
func (d *Daemon) makeClone(ctx context.Context, sinst *store.Instance, sv, cv *driver.VM, spec vm.Spec, sdir string) (*store.Instance, *driver.VM, snapshot.Info, error) {
	inst, err := d.store.Create(spec) // in a temporary directory, renamed into place by Commit
	if errors.Is(err, store.ErrExists) {
		return nil, nil, snapshot.Info{}, api.Errorf(api.CodeConflict, "%v", err)
	}
	if err != nil {
		return nil, nil, snapshot.Info{}, hostError(fmt.Errorf("vm %q: create its directory: %w", spec.Name, err))
	}
	fail := func(err error) (*store.Instance, *driver.VM, snapshot.Info, error) {
		return nil, nil, snapshot.Info{}, errors.Join(err, cv.Delete(ctx, inst), d.store.Discard(inst))
	}
	origin := inst.Path(store.OriginDir)
	var info snapshot.Info
	if sdir != "" {
		if info, err = snapshot.Load(sdir); err == nil {
			err = snapshot.LinkTree(sdir, origin)
		}
	} else {
		d.mu.Lock()
		r := d.entry(sinst.Spec.Name).run // as it is now that its slot is ours
		d.mu.Unlock()
		if err = os.Mkdir(origin, 0o700); err == nil {
			// Its memory only when the clone can be restored from it.
			info, err = d.snap(ctx, sinst, sv, r, origin, snapshot.DefaultTag(time.Now()), cv.Warm != nil)
		}
		if err == nil {
			err = store.WriteJSON(origin+string(os.PathSeparator)+warm.InfoFile, info)
		}
	}
	if err != nil {
		return fail(fmt.Errorf("vm %q: its snapshot of %s: %w", spec.Name, sinst.Spec.Name, err))
	}
	// What the clone can do is asked again with its origin in place (here
	// until Commit renames the directory): the driver takes the clone's NIC
	// from the origin's saved memory (the address the guest's network config
	// names), and the seed must name it too.
	here := spec
	here.Warm = origin
	cv = driver.Bind(ctx, cv.Driver, &here)
	if err := d.fill(ctx, cv, inst, driver.CreateInput{Clone: origin}); err != nil {
		return fail(hostError(err))
	}
	if err := d.store.Commit(inst); err != nil {
		if errors.Is(err, store.ErrExists) {
			err = api.Errorf(api.CodeConflict, "%v", err)
		}
		return fail(err)
	}
	return inst, cv, info, nil
}

// dropOrigin frees, once a clone has started, the memory of the snapshot it
// was made from: it is never restored again (its disk has moved on).
func (d *Daemon) dropOrigin(inst *store.Instance, v *driver.VM) {
	if v.States == nil || inst.Spec.Warm != inst.Path(store.OriginDir) {
		return
	}
	origin := &store.Instance{Dir: inst.Spec.Warm, Spec: inst.Spec}
	if v.States.HasSavedState(origin) {
		if err := v.States.DiscardState(origin); err != nil {
			d.log.Warn("free the memory a clone was restored from", "vm", inst.Spec.Name, "err", err)
		}
	}
}

// settleSnapshots removes what interrupted snapshots left (their directories;
// the drivers settle their disks) and the layers nothing reads, at host start.
func (d *Daemon) settleSnapshots(ctx context.Context) {
	for _, p := range snapshot.CleanStale(d.opts.Layout.VMsDir()) {
		d.log.Info("removed an unfinished snapshot", "dir", p)
	}
	if _, _, err := d.pruneLayers(ctx); err != nil {
		d.log.Warn("prune disk layers", "err", err)
	}
}

// beginAfter is begin for work that queues behind snapshots and clones of
// the same VM (two forks at once take their snapshots one after the other)
// rather than being refused; any other operation in progress still refuses.
func (d *Daemon) beginAfter(ctx context.Context, name, op string) (func(error), error) {
	for deadline := time.Now().Add(snapshotQueueWait); ; {
		done, err := d.begin(name, op)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return done, err
		}
		d.mu.Lock()
		cur := d.entry(name).op
		d.mu.Unlock()
		if cur != opClone && cur != opSnapshot && cur != "" {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// snapshotQueueWait bounds the wait behind another snapshot or clone.
const snapshotQueueWait = 15 * time.Minute
