package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Create makes a VM and, if asked, starts it. It runs detached from the request:
// a client that goes away (Ctrl-C) leaves a whole VM or none, never half of one.
func (d *Daemon) Create(ctx context.Context, req api.CreateRequest) (api.VM, error) {
	ctx = context.WithoutCancel(ctx)
	spec := req.Spec
	spec.Warm = "" // the host's own choice, never a client's path
	if req.ISOUpload != "" {
		// An installer uploaded from a client's machine (remote.go).
		var err error
		if spec.ISO, err = d.uploadedISO(req.ISOUpload); err != nil {
			return api.VM{}, err
		}
	}
	vm.Defaults.Fill(&spec)
	spec.Created = time.Now().UTC().Truncate(time.Second)
	if err := d.checkBackend(spec.Backend); err != nil { // before any work
		return api.VM{}, err
	}
	if spec.Name == "" {
		spec.Name = vm.GenerateName(d.store.Exists)
	}
	if err := vm.ValidateName(spec.Name); err != nil {
		return api.VM{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if req.CheckOnly {
		if err := spec.ValidateSettings(); err != nil {
			return api.VM{}, api.Errorf(api.CodeInvalid, "%v", err)
		}
		if d.store.Exists(spec.Name) {
			return api.VM{}, errExists(spec.Name)
		}
		return api.VM{Spec: spec, State: vm.Stopped}, nil
	}
	done, err := d.begin(spec.Name, "creating")
	if err != nil {
		return api.VM{}, err
	}
	defer releaseOnPanic(done)
	t0 := time.Now()
	inst, notice, handed, err := d.create(ctx, spec, !req.Cold, req.Start, t0)
	if err != nil {
		done(nil) // nothing is left of the VM: no error to remember
		d.forget(spec.Name)
		return api.VM{}, err
	}
	if handed != nil { // a spare clone, running already (spare.go)
		d.runHandedOver(inst, handed)
		done(nil)
		d.events.publish(api.Event{Type: api.EventVMCreated, VM: spec.Name, State: vm.Stopped})
		d.events.publish(api.Event{Type: api.EventVMState, VM: spec.Name, State: vm.Running})
		v := d.describe(ctx, inst)
		v.Notice, v.LastStart = notice, loadStartReport(inst)
		return v, nil
	}
	done(nil)
	d.events.publish(api.Event{Type: api.EventVMCreated, VM: spec.Name, State: vm.Stopped})
	if req.Start {
		v, err := d.Start(ctx, spec.Name, api.StartRequest{})
		v.Notice = driver.JoinNotices(notice, v.Notice)
		return v, err
	}
	v := d.describe(ctx, inst)
	v.Notice = notice
	return v, nil
}

func errExists(name string) error {
	return api.Errorf(api.CodeConflict, "vm %q already exists: pick another name or remove it with `fvm rm %s`", name, name)
}

func (d *Daemon) forget(name string) {
	d.mu.Lock()
	if e := d.vms[name]; e != nil && e.run == nil && e.op == "" {
		delete(d.vms, name)
	}
	d.mu.Unlock()
}

// create makes the VM's directory; with clone, from its image's warm snapshot
// when one fits (the notice says why not when one exists but does not). With
// start too, a spare clone of that snapshot becomes the VM when there is one
// that fits: it is returned running (handed), its start reported from t0.
func (d *Daemon) create(ctx context.Context, spec vm.Spec, clone, start bool, t0 time.Time) (_ *store.Instance, _ string, _ *handedOver, err error) {
	if d.store.Exists(spec.Name) {
		return nil, "", nil, errExists(spec.Name)
	}
	var in driver.CreateInput
	if spec.Blank && spec.ISO == "" { // no image, no installer yet (blank.go)
		resolveBlank(&spec)
	} else if spec.ISO != "" || spec.AutoInstall { // installed from an ISO: no base image (install.go)
		if err := d.resolveISO(&spec); err != nil {
			return nil, "", nil, err
		}
	} else {
		img, release, err := d.images.Resolve(ctx, spec.Image, spec.Arch)
		if err != nil {
			return nil, "", nil, err
		}
		defer release() // once the VM's spec names the base, or nothing is left of it
		if err := setImage(&spec, img); err != nil {
			return nil, "", nil, err
		}
		in.Base = &driver.Base{Path: img.Path, Format: img.Format, VirtualSize: img.Virtual, Digest: img.Digest}
	}
	if err := spec.Validate(); err != nil {
		return nil, "", nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	for _, m := range spec.Mounts {
		if st, err := os.Stat(m.HostPath); err != nil || !st.IsDir() {
			return nil, "", nil, api.Errorf(api.CodeInvalid, "share %q: %q is not a directory on the VM's host (%s): create it there or fix the path", m.String(), m.HostPath, hostname())
		}
	}
	v, err := d.chooseDriver(ctx, &spec) // saves the choice in spec.Backend
	if err != nil {
		return nil, "", nil, err
	}
	var notice string
	if clone {
		dec := d.warm.Decide(ctx, v, &spec)
		spec.Warm, in.Clone, notice = dec.Dir, dec.Dir, dec.Notice
		if dec.Dir != "" { // a clone's spec: what it is (its NIC, for one) follows from its snapshot
			v = driver.Bind(ctx, v.Driver, &spec)
		}
		if sp := d.takeSpare(dec.Dir, &spec, start); sp != nil {
			h, err := d.handOverSpare(ctx, sp, spec, t0, nil)
			if err == nil {
				return h.inst, notice, h, nil
			}
			d.log.Warn("spare clone not handed over: cloning as usual", "vm", spec.Name, "err", err)
		}
	}
	inst, err := d.store.Create(spec) // in a temporary directory, renamed into place by Commit
	if errors.Is(err, store.ErrExists) {
		return nil, "", nil, api.Errorf(api.CodeConflict, "%v", err)
	}
	if err != nil {
		return nil, "", nil, hostError(fmt.Errorf("vm %q: create its directory: %w", spec.Name, err))
	}
	defer func() {
		if r := recover(); r != nil { // a driver's bug: nothing of the VM stays either
			v.Delete(ctx, inst)
			d.store.Discard(inst)
			panic(r)
		}
	}()
	err = d.fill(ctx, v, inst, in)
	if err == nil {
		err = d.store.Commit(inst)
		if errors.Is(err, store.ErrExists) {
			err = api.Errorf(api.CodeConflict, "%v", err)
		}
	}
	if err != nil { // leave no stray VM dir behind
		return nil, "", nil, errors.Join(hostError(err), v.Delete(ctx, inst), d.store.Discard(inst))
	}
	d.mu.Lock()
	d.entry(spec.Name).vm = v
	d.mu.Unlock()
	return inst, notice, nil, nil
}

// fill writes a new instance's identity, then lets its driver make the disks
// and place the seed.
func (d *Daemon) fill(ctx context.Context, v *driver.VM, inst *store.Instance, in driver.CreateInput) error {
	seed, err := provision(d.opts.Layout, inst, v.Caps.MAC, v.Caps.SSHPort)
	if err != nil {
		return fmt.Errorf("vm %q: provision: %w", inst.Spec.Name, err)
	}
	in.Seed = seed
	if err := v.Create(ctx, inst, in); err != nil {
		return fmt.Errorf("vm %q: create disk: %w", inst.Spec.Name, err)
	}
	return nil
}

// setImage records the resolved image in the spec: its base and, unless given,
// its arch (a bare disk file says nothing of its arch: the host's is assumed).
func setImage(spec *vm.Spec, img api.Image) error {
	if spec.Arch == "" {
		spec.Arch = img.Arch
	}
	if spec.Arch == "" {
		spec.Arch = vm.HostArch()
	}
	if img.Arch != "" && spec.Arch != img.Arch {
		return api.Errorf(api.CodeInvalid, "image %q is %s, not %s: drop the architecture or pick a %s image", spec.Image, img.Arch, spec.Arch, spec.Arch)
	}
	spec.BaseImage = img.Path
	return nil
}

// Start boots a stopped VM, or resumes a suspended one (unless req.Cold).
func (d *Daemon) Start(ctx context.Context, name string, req api.StartRequest) (api.VM, error) {
	ctx = context.WithoutCancel(ctx)
	inst, v, r, err := d.lookup(ctx, name)
	if err != nil {
		return api.VM{}, err
	}
	if r != nil {
		return api.VM{}, api.Errorf(api.CodeConflict, "vm %q is already running", name)
	}
	done, err := d.begin(name, "starting")
	if err != nil {
		return api.VM{}, err
	}
	defer releaseOnPanic(done)
	if req.ISO != "" { // an installer for a VM made without an image (blank.go)
		if v, err = d.attachISO(ctx, inst, v, req.ISO); err != nil {
			done(nil)
			return api.VM{}, err
		}
	}
	if v.States != nil && req.Cold && v.States.HasSavedState(inst) {
		if err := v.States.DiscardState(inst); err != nil {
			done(err)
			return api.VM{}, fmt.Errorf("vm %q: discard its saved state: %w", name, err)
		}
		d.log.Info("saved state discarded for a cold boot", "vm", name)
	}
	t0 := time.Now()
	dec := d.warm.ForStart(ctx, v, inst)
	// The first start of a warm clone takes a spare of its snapshot that fits.
	if sp := d.takeSpare(dec.Dir, &inst.Spec, dec.Dir == inst.Spec.Warm); sp != nil {
		h, err := d.handOverSpare(ctx, sp, inst.Spec, t0, inst)
		if err == nil {
			d.runHandedOver(h.inst, h)
			done(nil)
			d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: vm.Running})
			out := d.describe(ctx, h.inst)
			out.LastStart = loadStartReport(h.inst) // says it was a spare
			return out, nil
		}
		d.log.Warn("spare clone not handed over: cloning as usual", "vm", name, "err", err)
	}
	m, notice, err := d.boot(ctx, inst, v, driver.StartOptions{Clone: dec.Dir}, dec.Notice, t0)
	done(err)
	if err != nil {
		return api.VM{}, err
	}
	d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: vm.Running})
	out := d.describe(ctx, inst)
	out.Notice = driver.JoinNotices(notice, m.Info().Notice)
	return out, nil
}

// boot starts a VM whose slot is held, with the host's decisions opts (a
// warm or snapshot clone's restore, or a restore of its own snapshot): a
// clone is re-identified before it counts as started (else it boots cold);
// the running machine is recorded, its SSH held and its end watched. t0 is
// when the start began, for its report.
func (d *Daemon) boot(ctx context.Context, inst *store.Instance, v *driver.VM, opts driver.StartOptions, notice string, t0 time.Time) (driver.Machine, string, error) {
	name := inst.Spec.Name
	logFrom := serialSize(inst.Path(store.SerialLog))
	m, err := v.Start(ctx, inst, opts)
	rep := newStartReport(inst, t0)
	var held *sshx.Client // a checked connection to hand to the holder
	if err == nil {
		rep.started(m)
	}
	if err == nil && m.Info().Boot == driver.BootClone {
		var why string
		if m, held, why, err = d.startClone(ctx, inst, v, m, opts, logFrom, rep); why != "" {
			notice = why
		}
	}
	if err != nil { // drivers name the VM in their errors
		d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: vm.Error, Error: err.Error()})
		return nil, "", err
	}
	r := d.record(inst, v, m)
	d.setStartReport(name, r, rep)
	d.hold(name, inst, r, held)
	go d.watch(name, r)
	d.dropOrigin(inst, v)
	return m, notice, nil
}

// Suspend saves a running VM's memory and device state and ends its
// hypervisor; the next Start resumes it.
func (d *Daemon) Suspend(ctx context.Context, name string) (api.VM, error) {
	ctx = context.WithoutCancel(ctx)
	inst, v, r, err := d.lookup(ctx, name)
	if err != nil {
		return api.VM{}, err
	}
	switch {
	case r == nil:
		return api.VM{}, api.Errorf(api.CodeConflict, "vm %q is not running: there is nothing to suspend", name)
	case r.Suspend == nil:
		return api.VM{}, api.Errorf(api.CodeUnsupported, "vm %q cannot be suspended: %s: stop it instead (`fvm stop %s`)", name, v.Caps.WhyNot(driver.CapSaveState, v.Name()), name)
	}
	done, err := d.begin(name, "suspending")
	if err != nil {
		return api.VM{}, err
	}
	t0 := time.Now()
	err = r.Suspend.Suspend(ctx)
	if err == nil {
		select {
		case <-r.Done():
		case <-time.After(10 * time.Second):
			err = fmt.Errorf("vm %q: the hypervisor did not exit after saving", name)
		}
		d.waitGone(name, r)
	}
	done(err)
	if err != nil {
		return d.describe(ctx, inst), err
	}
	d.log.Info("vm suspended", "vm", name, "took", time.Since(t0))
	d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: vm.Suspended})
	return d.describe(ctx, inst), nil
}

// Stop shuts a VM down: ACPI power-off, then a kill after the timeout (or at
// once with Force); with Save it suspends the VM instead.
func (d *Daemon) Stop(ctx context.Context, name string, req api.StopRequest) (api.VM, error) {
	if req.Save {
		return d.Suspend(ctx, name)
	}
	ctx = context.WithoutCancel(ctx)
	inst, err := d.get(name)
	if err != nil {
		return api.VM{}, err
	}
	done, err := d.begin(name, "stopping")
	if err != nil {
		return api.VM{}, err
	}
	defer releaseOnPanic(done)
	err = d.stop(ctx, name, req)
	done(err) // publishes the state the VM settled in (begin)
	return d.describe(ctx, inst), err
}

func (d *Daemon) stop(ctx context.Context, name string, req api.StopRequest) error {
	d.mu.Lock()
	m := d.entry(name).run
	d.mu.Unlock()
	if m == nil {
		return nil // already stopped: stopping is idempotent, like docker stop
	}
	timeout := time.Duration(req.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if !req.Force {
		if err := m.Shutdown(ctx); err != nil {
			d.log.Warn("graceful shutdown failed, killing", "vm", name, "err", err)
		} else {
			select {
			case <-m.Done():
				d.waitGone(name, m)
				return nil
			case <-time.After(timeout):
				d.log.Warn("guest did not power off in time, killing", "vm", name, "timeout", timeout)
			}
		}
	}
	if err := m.Kill(); err != nil {
		return fmt.Errorf("vm %q: kill: %w", name, err)
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		return fmt.Errorf("vm %q: hypervisor did not exit after kill", name)
	}
	d.waitGone(name, m)
	return nil
}

// waitGone makes sure the watcher has recorded the end of m before returning,
// so a Stop's answer never still says running.
func (d *Daemon) waitGone(name string, m *driver.Run) {
	for i := 0; i < 100; i++ {
		d.mu.Lock()
		gone := d.entry(name).run != m
		d.mu.Unlock()
		if gone {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.mu.Lock()
	d.entry(name).ended(m)
	d.mu.Unlock()
}

// Restart stops (if running) and starts a VM.
func (d *Daemon) Restart(ctx context.Context, name string, req api.StopRequest) (api.VM, error) {
	if _, err := d.Stop(ctx, name, req); err != nil {
		return api.VM{}, err
	}
	return d.Start(ctx, name, api.StartRequest{})
}

// Remove deletes a VM and everything it owns; a running VM needs force. A
// broken VM (its spec unreadable) is removed too: every driver makes sure
// nothing of it still runs.
func (d *Daemon) Remove(ctx context.Context, name string, force bool) (api.Removed, error) {
	ctx = context.WithoutCancel(ctx)
	inst, err := d.get(name)
	var broken *brokenVM
	if errors.As(err, &broken) {
		inst, err = &store.Instance{Dir: broken.dir, Spec: vm.Spec{Name: name}}, nil
	}
	if err != nil {
		return api.Removed{}, err
	}
	done, err := d.begin(name, "removing")
	if err != nil {
		return api.Removed{}, err
	}
	defer releaseOnPanic(done)
	d.mu.Lock()
	running := d.entry(name).run != nil
	d.mu.Unlock()
	if running && !force {
		done(nil)
		return api.Removed{}, api.Errorf(api.CodeConflict, "vm %q is running: stop it first (`fvm stop %s`) or use `fvm rm -f %s`", name, name, name)
	}
	if running {
		if err := d.stop(ctx, name, api.StopRequest{Force: true}); err != nil {
			done(err)
			return api.Removed{}, err
		}
	}
	layers := d.vmLayers(inst.Dir) // to say which stay, and why
	var derr error
	if broken != nil {
		for _, drv := range d.opts.Drivers { // whichever made it: each kills only its own
			derr = errors.Join(derr, drv.Delete(ctx, inst))
		}
	} else if drv, oerr := d.driverOf(&inst.Spec); oerr == nil { // a backend this host lacks ran nothing here
		derr = drv.Delete(ctx, inst)
	}
	if err = errors.Join(derr, d.store.Remove(name)); err != nil {
		err = fmt.Errorf("vm %q: remove: %w (`fvm rm -f %s` again once that is fixed)", name, err, name)
		done(err)
		return api.Removed{}, hostError(err)
	}
	done(nil)
	d.mu.Lock()
	delete(d.vms, name)
	d.mu.Unlock()
	d.console.Forget(name) // its console links die with it
	d.events.publish(api.Event{Type: api.EventVMRemoved, VM: name})
	_, freed, perr := d.pruneLayers(ctx)
	out := api.Removed{Kept: d.keptNotes(layers), Freed: freed}
	if perr != nil {
		out.Kept = append(out.Kept, fmt.Sprintf("unused disk layers were not all removed (%v): `fvm image prune` tries again", perr))
	}
	return out, nil
}

// stopEphemeral stops, on the host's way out, the VMs of drivers whose VMs do
// not outlive the host (driver.Caps.OutlivesHost), so none is cut off mid-write.
func (d *Daemon) stopEphemeral(ctx context.Context) {
	d.mu.Lock()
	var names []string
	for name, e := range d.vms {
		if e.run != nil && !e.run.Caps.OutlivesHost {
			names = append(names, name)
		}
	}
	d.mu.Unlock()
	for _, name := range names {
		if _, err := d.Stop(ctx, name, api.StopRequest{TimeoutSeconds: 30}); err != nil {
			d.log.Warn("stop on host exit", "vm", name, "err", err)
		}
	}
}
