package daemon

// Spare clones (`fvm image warm IMAGE --spare`): the host keeps one clone of
// a warm snapshot made ready ahead of time, frozen, for the next `fvm run` of
// that image and shape. A clone's wait is mostly the guest's work (the state
// loaded, re-identification, and above all the first SSH connection with its
// own key, each a chain of first-time code under emulation); a spare has done
// all of it: its own host key, machine id, entropy and VM generation id, and
// a logged-in connection with its key. Handing it over only sets its clock
// and its name (cloudinit.RenameScript), moves its directory into place and
// adopts its hypervisor under the VM's name. It waits in a `.creating-`
// directory, so a crash leaves nothing a host start does not remove, and its
// disk layers count as read (vmBases).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
	"github.com/fvmhq/fvm/core/warm"
)

// sparePrefix begins a spare's name (its guest's hostname until handover).
const sparePrefix = "spare-"

// spareRefill is how long after a handover the next spare is made: making
// one is a clone's start, which would compete for CPU with the VM just
// handed over (its user's first commands).
var spareRefill = 20 * time.Second

// spare is a clone kept ready: its machine frozen, its connection held.
type spare struct {
	snap      string // the warm snapshot it was cloned from
	key       string // spareKey of the VMs it can become
	inst      *store.Instance
	v         *driver.VM
	m         driver.Machine
	client    *sshx.Client
	machineID string
	made      time.Time
}

// spares are the host's spare clones, by snapshot directory.
type spares struct {
	mu     sync.Mutex
	ready  map[string]*spare
	making map[string]bool
	closed bool // the host is stopping: no new ones
}

// spareWish is what SparesDir keeps for a snapshot: the spec its spares are
// made with (the shape `fvm image warm --spare` was given).
type spareWish struct {
	Snapshot string  `json:"snapshot"`
	Spec     vm.Spec `json:"spec"`
}

// sparesDir holds the wishes, one file per snapshot.
func (d *Daemon) sparesDir() string { return filepath.Join(d.opts.Layout.DataDir, "spares") }

func (d *Daemon) spareWishFile(snap string) string {
	return filepath.Join(d.sparesDir(), filepath.Base(snap)+".json")
}

// spareKey is what a VM's spec must share with a spare's for the spare to
// become that VM: everything but its name, creation time, image name (the
// base is compared) and automatic ports (the host's side only).
func spareKey(s vm.Spec) string {
	s.Name, s.Created, s.Image, s.NoAutoPorts = "", time.Time{}, "", false
	b, _ := json.Marshal(s)
	return string(b)
}

// spareFits says whether a VM of spec could be handed a spare at all: one
// with forwards, extra keys or shares is cloned as usual (those are set up
// at a start from its spec).
func spareFits(spec *vm.Spec) bool {
	return len(spec.Ports) == 0 && len(spec.SSHKeys) == 0 && len(spec.Mounts) == 0 && spec.ISO == "" && !spec.Rosetta
}

// SetSpare turns spares of the warm snapshot snap on (for VMs of spec) or
// off, and makes one now (waiting for it) or drops the one there is.
func (d *Daemon) SetSpare(ctx context.Context, snap string, spec vm.Spec, on bool) error {
	if !on {
		err := os.Remove(d.spareWishFile(snap))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		d.dropSpare(snap)
		return err
	}
	ctx = context.WithoutCancel(ctx) // a client gone (Ctrl-C) leaves a whole spare or none
	if !spareFits(&spec) {
		return api.Errorf(api.CodeInvalid, "a spare clone is made without -p forwards, --ssh-key or shares: drop them from `fvm image warm --spare`")
	}
	if err := store.MkdirPrivate(d.sparesDir()); err != nil {
		return hostError(err)
	}
	spec.Name, spec.Warm, spec.Created = "", snap, time.Time{}
	if err := store.WriteJSON(d.spareWishFile(snap), spareWish{Snapshot: snap, Spec: spec}); err != nil {
		return hostError(err)
	}
	if err := d.makeSpare(ctx, snap, spec); err != nil {
		os.Remove(d.spareWishFile(snap)) // not wished for again at every host start
		return fmt.Errorf("no spare clone of %s: %w (the warm snapshot is there: leave out --spare)", spec.Image, err)
	}
	return nil
}

// keepSpares makes, after delay, the spares wished for that are missing
// (at host start, after a handover, after a warm snapshot was made).
func (d *Daemon) keepSpares(delay time.Duration) {
	go func() {
		select {
		case <-time.After(delay):
		case <-d.bg.Done():
			return
		}
		for _, w := range d.retireStaleSpares(d.bg) {
			if err := d.makeSpare(d.bg, w.Snapshot, w.Spec); err != nil && d.bg.Err() == nil {
				d.log.Warn("make a spare clone", "snapshot", w.Snapshot, "err", err)
			}
		}
	}()
}

// makeSpare makes the spare of snap unless there is one (or one is being
// made): a clone of it started, re-identified under a spare's name with its
// timers kept paused, connected with its own key, then frozen.
func (d *Daemon) makeSpare(ctx context.Context, snap string, spec vm.Spec) (err error) {
	s := &d.spares
	s.mu.Lock()
	if s.closed || s.ready[snap] != nil || s.making[snap] {
		s.mu.Unlock()
		return nil
	}
	if s.making == nil {
		s.making, s.ready = map[string]bool{}, map[string]*spare{}
	}
	s.making[snap] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.making, snap)
		s.mu.Unlock()
	}()
	t0 := time.Now()
	var b [4]byte
	rand.Read(b[:])
	spec.Name, spec.Warm, spec.Created = sparePrefix+hex.EncodeToString(b[:]), snap, time.Now().UTC().Truncate(time.Second)
	drv, err := d.driverOf(&spec)
	if err != nil {
		return err
	}
	v := driver.Bind(ctx, drv, &spec)
	if v.Warm == nil || !v.Caps.OutlivesHost {
		return fmt.Errorf("the %s backend keeps no spare clones", v.Name())
	}
	if dec := d.warm.Decide(ctx, v, &spec); dec.Dir != snap {
		return fmt.Errorf("the warm snapshot %s does not serve %s any more", snap, spec.Image)
	}
	img, release, err := d.images.Resolve(ctx, spec.Image, spec.Arch)
	if err != nil {
		return err
	}
	defer release()
	inst, err := d.store.Create(spec) // .creating-spare-…: a host start removes it
	if err != nil {
		return err
	}
	sp := &spare{snap: snap, key: spareKey(spec), inst: inst, v: v, made: t0}
	defer func() {
		if err != nil {
			d.discardSpare(sp)
		}
	}()
	in := driver.CreateInput{Clone: snap, Base: &driver.Base{Path: img.Path, Format: img.Format, VirtualSize: img.Virtual, Digest: img.Digest}}
	if err = d.fill(ctx, v, inst, in); err != nil {
		return err
	}
	if sp.m, err = v.Start(ctx, inst, driver.StartOptions{Clone: snap}); err != nil {
		return err
	}
	if sp.m.Info().Boot != driver.BootClone {
		return errors.New("the spare was not restored from the snapshot")
	}
	freezer, ok := sp.m.(driver.Freezer)
	if !ok {
		return fmt.Errorf("the %s backend cannot freeze a spare clone", v.Name())
	}
	_, userKey, err := sshx.LoadOrCreateKey(d.opts.Layout.UserKey())
	if err != nil {
		return err
	}
	re, err := d.reidentifyWatched(ctx, inst, v.Run(sp.m), userKey, true, inst.Path(store.SerialLog), 0) // a crashed one is dropped at once
	if err != nil {
		return err
	}
	sp.client, sp.machineID = re.Client, re.MachineID
	if re.Via != warm.ViaAgent {
		return errors.New("the spare's guest agent did not answer: its handover needs it")
	}
	if err = freezer.Freeze(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	closed := s.closed
	_, werr := os.Stat(d.spareWishFile(snap)) // turned off while this one was made
	if !closed && werr == nil {
		s.ready[snap] = sp
	}
	s.mu.Unlock()
	if closed {
		return errors.New("the host is stopping")
	}
	if werr != nil {
		return errors.New("spares of the snapshot were turned off")
	}
	d.log.Info("spare clone ready", "snapshot", filepath.Base(snap), "spare", spec.Name, "took", time.Since(t0).Round(time.Millisecond), "phases", phasesText(api.StartReport{Phases: re.Phases}))
	go d.watchSpare(sp)
	return nil
}

// watchSpare drops a spare whose hypervisor ended while it waited (killed
// from outside, out of memory) and makes another.
func (d *Daemon) watchSpare(sp *spare) {
	err := <-sp.m.Done()
	s := &d.spares
	s.mu.Lock()
	mine := s.ready[sp.snap] == sp
	if mine {
		delete(s.ready, sp.snap)
	}
	s.mu.Unlock()
	if mine {
		d.log.Warn("a spare clone's hypervisor ended while it waited", "spare", sp.inst.Spec.Name, "err", err)
		d.discardSpare(sp)
		d.keepSpares(spareRefill)
	}
}

// hasSpare says whether a spare of snap is ready.
func (d *Daemon) hasSpare(snap string) bool {
	d.spares.mu.Lock()
	defer d.spares.mu.Unlock()
	return d.spares.ready[snap] != nil
}

// takeSpare takes the ready spare of snap that can become a VM of spec, to
// start now.
func (d *Daemon) takeSpare(snap string, spec *vm.Spec, start bool) *spare {
	if !start || snap == "" || !spareFits(spec) {
		return nil
	}
	s := &d.spares
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.ready[snap]
	if sp == nil {
		return nil
	}
	want := *spec
	want.Warm = snap
	if spareKey(want) != sp.key {
		return nil
	}
	delete(s.ready, snap)
	return sp
}

// handedOver is a spare clone become a VM, running.
type handedOver struct {
	inst   *store.Instance
	v      *driver.VM
	m      driver.Machine
	client *sshx.Client
	rep    *startReport
}

// handOverSpare hands sp over as the VM of spec, reporting its start from t0:
// a VM made now, or (replace) one made before that never ran, whose files the
// spare's replace.
func (d *Daemon) handOverSpare(ctx context.Context, sp *spare, spec vm.Spec, t0 time.Time, replace *store.Instance) (*handedOver, error) {
	rep := newStartReport(&store.Instance{Dir: sp.inst.Dir, Spec: spec}, t0)
	rep.r.Boot, rep.r.Via = driver.BootClone, warm.ViaSpare
	rep.r.Note = fmt.Sprintf("a spare clone made %s before (its own host key, machine id, entropy and login then)", time.Since(sp.made).Round(time.Second))
	inst, v, m, err := d.handOver(ctx, sp, spec, rep, replace)
	if err != nil {
		return nil, err
	}
	rep.inst = inst
	return &handedOver{inst: inst, v: v, m: m, client: sp.client, rep: rep}, nil
}

// runHandedOver records a handed-over spare as the VM's running machine, as
// boot does for a start.
func (d *Daemon) runHandedOver(inst *store.Instance, h *handedOver) {
	name := inst.Spec.Name
	r := d.record(inst, h.v, h.m)
	d.setStartReport(name, r, h.rep)
	d.hold(name, inst, r, h.client)
	go d.watch(name, r)
	d.mu.Lock()
	d.entry(name).vm = h.v
	d.mu.Unlock()
}

// handOver makes spare sp the VM of spec (its slot held, its name free): the
// guest goes on with its clock set and takes the VM's name, the spare's
// directory becomes the VM's and its hypervisor is adopted under that name.
// On an error the spare is gone and the VM is made as any clone is.
func (d *Daemon) handOver(ctx context.Context, sp *spare, spec vm.Spec, rep *startReport, replace *store.Instance) (inst *store.Instance, v *driver.VM, m driver.Machine, err error) {
	defer func() {
		if err != nil {
			d.discardSpare(sp)
			d.keepSpares(spareRefill)
		}
	}()
	r := sp.v.Run(sp.m)
	if err = sp.m.(driver.Freezer).Thaw(ctx); err != nil {
		return nil, nil, nil, err
	}
	if r.Agent == nil {
		return nil, nil, nil, errors.New("no guest agent")
	}
	if err = r.Agent.GuestSetTime(ctx, time.Now()); err != nil {
		return nil, nil, nil, fmt.Errorf("set its clock: %w", err)
	}
	rep.mark(api.PhaseThaw)
	if err = d.warm.Rename(ctx, r, spec.Name, sp.inst.Spec.Name, sp.machineID); err != nil {
		return nil, nil, nil, err
	}
	rep.mark(api.PhaseRename)
	inst = sp.inst
	snap := inst.Spec.Warm
	inst.Spec = spec
	inst.Spec.Warm = snap
	if err = inst.SaveSpec(); err != nil {
		return nil, nil, nil, err
	}
	if err = reprovision(d.opts.Layout, inst, sp.v.Caps.MAC, sp.v.Caps.SSHPort); err != nil {
		return nil, nil, nil, err
	}
	var old *store.Instance // the replaced VM's files, once exchanged
	from := inst.Dir
	if replace == nil {
		err = d.store.Commit(inst) // its directory renamed to the VM's
	} else {
		old, err = d.store.Replace(inst)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	v = driver.Bind(ctx, sp.v.Driver, &inst.Spec)
	if m, err = v.Attach(ctx, inst); err != nil {
		// The VM's own files (or none) back in place; the spare's go with it.
		if old != nil {
			back, xerr := d.store.Replace(old) // exchanged again: the spare's files in the temporary
			if xerr != nil {
				return nil, nil, nil, errors.Join(err, xerr)
			}
			sp.inst = back
		} else if rerr := os.Rename(inst.Dir, from); rerr == nil {
			inst.Dir = from
		} else {
			err = errors.Join(err, rerr)
		}
		return nil, nil, nil, err
	}
	if old != nil { // never ran: nothing of it runs or is worth keeping
		if rerr := errors.Join(driver.Bind(ctx, sp.v.Driver, &replace.Spec).Delete(ctx, old), d.store.Discard(old)); rerr != nil {
			d.log.Warn("remove the files a spare clone replaced", "vm", spec.Name, "dir", old.Dir, "err", rerr)
		}
	}
	if merr := sp.m.(driver.Freezer).Moved(from, inst.Dir); merr != nil {
		// Runs as it is; what the hypervisor opens again by its old path fails (a suspend, a snapshot).
		d.log.Warn("a spare clone's old path", "vm", spec.Name, "err", merr)
	}
	rep.mark(api.PhaseAdopt)
	d.keepSpares(spareRefill)
	return inst, v, m, nil
}

// dropSpare drops the ready spare of snap, if any.
func (d *Daemon) dropSpare(snap string) {
	s := &d.spares
	s.mu.Lock()
	sp := s.ready[snap]
	delete(s.ready, snap)
	s.mu.Unlock()
	if sp != nil {
		d.discardSpare(sp)
	}
}

// dropSparesOn drops the spares, and the wishes for them, of the snapshots
// made on bases (their image is removed): nothing reads those snapshots then.
func (d *Daemon) dropSparesOn(bases map[string]bool) {
	if len(bases) == 0 {
		return
	}
	s := &d.spares
	s.mu.Lock()
	var drop []*spare
	for snap, sp := range s.ready {
		if bases[sp.inst.Spec.BaseImage] {
			drop = append(drop, sp)
			delete(s.ready, snap)
		}
	}
	s.mu.Unlock()
	for _, sp := range drop {
		os.Remove(d.spareWishFile(sp.snap))
		d.discardSpare(sp)
	}
}

// stopSpares ends every spare (the host stops; a spare waits only for it).
func (d *Daemon) stopSpares() {
	s := &d.spares
	s.mu.Lock()
	s.closed = true
	var all []*spare
	for _, sp := range s.ready {
		all = append(all, sp)
	}
	s.ready = nil
	s.mu.Unlock()
	for _, sp := range all {
		d.discardSpare(sp)
	}
}

// discardSpare ends a spare's machine and removes its directory.
func (d *Daemon) discardSpare(sp *spare) {
	if sp.client != nil {
		sp.client.Close()
	}
	if sp.m != nil {
		sp.m.Kill()
		select {
		case <-sp.m.Done():
		case <-time.After(killWaitSpare):
		}
	}
	ctx := context.Background()
	if err := errors.Join(sp.v.Delete(ctx, sp.inst), d.store.Discard(sp.inst)); err != nil {
		d.log.Warn("remove a spare clone", "dir", sp.inst.Dir, "err", err)
	}
}

const killWaitSpare = 10 * time.Second

// killInterrupted ends the hypervisor of what a crash left in a `.creating-`
// directory (a spare's; a create's runs none), before the directory goes.
func (d *Daemon) killInterrupted(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(d.opts.Layout.VMsDir(), ".creating-"+sparePrefix+"*"))
	for _, dir := range dirs {
		if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
			continue // a handed-over spare's old path, a link to its VM (driver.Freezer.Moved)
		}
		var spec vm.Spec
		if store.ReadJSON(filepath.Join(dir, store.SpecFile), &spec) != nil { // named as its VM when a handover was cut short
			continue
		}
		drv, err := d.driverOf(&spec)
		if err != nil {
			continue
		}
		if err := drv.Delete(ctx, &store.Instance{Dir: dir, Spec: spec}); err != nil {
			d.log.Warn("end an interrupted spare clone", "dir", dir, "err", err)
		}
	}
}
