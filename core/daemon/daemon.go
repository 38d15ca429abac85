// Package daemon is the fvm host: it owns the VM registry, runs each VM's
// lifecycle through a driver, re-adopts VMs left running by an earlier host and
// publishes events. It implements api/server.Service.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Options configure a Daemon.
type Options struct {
	Layout  store.Layout
	Driver  driver.Driver
	Version string
	Log     *slog.Logger
	// Checks reports host capabilities for `fvm check`.
	Checks func(context.Context) []api.Check
}

// Daemon is the host's VM registry. Every modifying operation on a VM holds that
// VM's slot for its duration, so two operations on one VM never interleave.
type Daemon struct {
	opts   Options
	store  *store.Store
	images *image.Registry
	events *broker
	log    *slog.Logger

	mu  sync.Mutex
	vms map[string]*entry
}

// entry is the host's live knowledge of one VM.
type entry struct {
	machine driver.Machine // nil when not running
	op      string         // operation in progress: creating, starting, stopping, removing
	err     string         // why the last operation failed
}

// New makes a daemon; call Adopt before serving.
func New(opts Options) *Daemon {
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Daemon{
		opts:   opts,
		store:  store.New(opts.Layout),
		images: &image.Registry{Layout: opts.Layout},
		events: newBroker(),
		log:    opts.Log,
		vms:    map[string]*entry{},
	}
}

// Adopt re-attaches to VMs left running by an earlier host.
func (d *Daemon) Adopt(ctx context.Context) {
	insts, err := d.store.List()
	if err != nil {
		d.log.Error("list vms", "err", err)
		return
	}
	for _, inst := range insts {
		m, err := d.opts.Driver.Attach(ctx, inst)
		if err != nil {
			if !errors.Is(err, driver.ErrNotRunning) {
				d.log.Warn("re-adopt failed", "vm", inst.Spec.Name, "err", err)
			}
			continue
		}
		d.log.Info("re-adopted running vm", "vm", inst.Spec.Name)
		d.mu.Lock()
		d.entry(inst.Spec.Name).machine = m
		d.mu.Unlock()
		go d.watch(inst.Spec.Name, m)
	}
}

// entry returns the entry for name, creating it; d.mu must be held.
func (d *Daemon) entry(name string) *entry {
	e := d.vms[name]
	if e == nil {
		e = &entry{}
		d.vms[name] = e
	}
	return e
}

// begin claims the VM's slot for op or fails with a conflict naming what is in progress.
func (d *Daemon) begin(name, op string) (func(err error), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entry(name)
	if e.op != "" {
		if e.op == op {
			return nil, api.Errorf(api.CodeConflict, "vm %q is already %s", name, op)
		}
		return nil, api.Errorf(api.CodeConflict, "vm %q is busy %s: try again when that is done", name, e.op)
	}
	e.op = op
	d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: opState(op)})
	return func(err error) {
		d.mu.Lock()
		e.op = ""
		e.err = ""
		if err != nil {
			e.err = err.Error()
		}
		d.mu.Unlock()
	}, nil
}

func opState(op string) vm.State {
	switch op {
	case "stopping", "removing":
		return vm.Stopping
	}
	return vm.Starting
}

// watch waits for a machine to end and records it.
func (d *Daemon) watch(name string, m driver.Machine) {
	err := <-m.Done()
	d.mu.Lock()
	e := d.vms[name]
	busy := e != nil && e.op != "" // e.g. a stop: the end was asked for
	if e != nil && e.machine == m {
		e.machine = nil
		if err != nil && e.op == "" {
			e.err = fmt.Sprintf("hypervisor exited: %v", err)
		}
	}
	d.mu.Unlock()
	d.log.Info("vm stopped", "vm", name, "err", err)
	ev := api.Event{Type: api.EventVMState, VM: name, State: vm.Stopped}
	if err != nil {
		ev.Error = err.Error()
	}
	d.events.publish(ev)
	if !busy {
		d.afterInstall(name, m, err)
	}
}

// Host describes the host process.
func (d *Daemon) Host(ctx context.Context) (api.HostInfo, error) {
	info := api.HostInfo{Version: d.opts.Version, PID: os.Getpid()}
	if d.opts.Checks != nil {
		info.Checks = d.opts.Checks(ctx)
	}
	return info, nil
}

// Subscribe streams events.
func (d *Daemon) Subscribe() (<-chan api.Event, func()) { return d.events.subscribe() }

// List returns every VM with its live state.
func (d *Daemon) List(ctx context.Context) ([]api.VM, error) {
	insts, err := d.store.List()
	if err != nil {
		return nil, err
	}
	out := make([]api.VM, 0, len(insts))
	for _, inst := range insts {
		out = append(out, d.describe(ctx, inst))
	}
	return out, nil
}

// Get returns one VM.
func (d *Daemon) Get(ctx context.Context, name string) (api.VM, error) {
	inst, err := d.get(name)
	if err != nil {
		return api.VM{}, err
	}
	return d.describe(ctx, inst), nil
}

func (d *Daemon) get(name string) (*store.Instance, error) {
	if err := vm.ValidateName(name); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	inst, err := d.store.Get(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "vm %q does not exist: see `fvm ls` for your VMs", name)
	}
	return inst, err
}

// describe derives a VM's state from the live system, never from a file.
func (d *Daemon) describe(ctx context.Context, inst *store.Instance) api.VM {
	name := inst.Spec.Name
	d.mu.Lock()
	e := d.entry(name)
	m, op, lastErr := e.machine, e.op, e.err
	d.mu.Unlock()

	v := api.VM{Spec: inst.Spec, Dir: inst.Dir, CreatedAt: inst.Spec.Created, Backend: d.opts.Driver.Name(), Error: lastErr}
	v.State = vm.Stopped
	if lastErr != "" {
		v.State = vm.Error
	}
	if m != nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := m.State(sctx)
		cancel()
		if err != nil {
			st, v.Error = vm.Error, err.Error()
		}
		v.State = st
		if rt, err := inst.LoadRuntime(); err == nil {
			v.SSHPort, v.Accel = rt.SSHPort, rt.Accel
		}
		if p, ok := m.(interface{ PID() int }); ok {
			v.PID = p.PID()
		}
	}
	if op != "" {
		v.State = opState(op)
	}
	return v
}

// Create makes a VM and, if asked, starts it. It runs detached from the request:
// a client that goes away (Ctrl-C) leaves a whole VM or none, never half of one.
func (d *Daemon) Create(ctx context.Context, req api.CreateRequest) (api.VM, error) {
	ctx = context.WithoutCancel(ctx)
	spec := req.Spec
	d.applyDefaults(&spec)
	if spec.Name == "" {
		spec.Name = vm.GenerateName(d.store.Exists)
	}
	if err := vm.ValidateName(spec.Name); err != nil {
		return api.VM{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	done, err := d.begin(spec.Name, "creating")
	if err != nil {
		return api.VM{}, err
	}
	inst, err := d.create(ctx, spec)
	if err != nil {
		done(nil) // nothing is left of the VM: no error to remember
		d.forget(spec.Name)
		return api.VM{}, err
	}
	done(nil)
	d.events.publish(api.Event{Type: api.EventVMCreated, VM: spec.Name, State: vm.Stopped})
	if req.Start {
		return d.Start(ctx, spec.Name)
	}
	return d.describe(ctx, inst), nil
}

func (d *Daemon) forget(name string) {
	d.mu.Lock()
	if e := d.vms[name]; e != nil && e.machine == nil && e.op == "" {
		delete(d.vms, name)
	}
	d.mu.Unlock()
}

func (d *Daemon) applyDefaults(s *vm.Spec) {
	if s.CPUs == 0 {
		s.CPUs = vm.DefaultCPUs
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = vm.DefaultMemoryMiB
	}
	if s.DiskBytes == 0 {
		s.DiskBytes = vm.DefaultDiskBytes
	}
	if s.User == "" {
		s.User = vm.DefaultUser
	}
	if s.Accel == "" {
		s.Accel = "auto"
	}
	s.Backend = d.opts.Driver.Name()
	s.Created = time.Now().UTC().Truncate(time.Second)
}

func (d *Daemon) create(ctx context.Context, spec vm.Spec) (inst *store.Instance, err error) {
	if d.store.Exists(spec.Name) {
		return nil, api.Errorf(api.CodeConflict, "vm %q already exists: pick another name or remove it with `fvm rm %s`", spec.Name, spec.Name)
	}
	if spec.ISO != "" || spec.AutoInstall { // installed from an ISO: no base image (install.go)
		if err := d.resolveISO(&spec); err != nil {
			return nil, err
		}
	} else if err := d.resolveImage(ctx, &spec); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if err := d.opts.Driver.Validate(ctx, &spec); err != nil {
		return nil, api.Errorf(api.CodeUnsupported, "vm %q: %v", spec.Name, err)
	}
	inst, err = d.store.Create(spec)
	if err != nil {
		return nil, api.Errorf(api.CodeConflict, "%v", err)
	}
	defer func() {
		if err != nil { // leave no stray VM dir behind
			err = errors.Join(err, d.opts.Driver.Delete(ctx, inst), d.store.Remove(spec.Name))
		}
	}()
	if err := provision(d.opts.Layout, inst); err != nil {
		return nil, fmt.Errorf("vm %q: provision: %w", spec.Name, err)
	}
	if err := d.opts.Driver.Create(ctx, inst); err != nil {
		return nil, fmt.Errorf("vm %q: create disk: %w", spec.Name, err)
	}
	return inst, nil
}

// resolveImage turns spec.Image (an absolute file path, a local image name or a
// catalog reference, pulled when not cached: images.go) into a cached base and
// fills the arch from it. Local names win over catalog references.
func (d *Daemon) resolveImage(ctx context.Context, spec *vm.Spec) error {
	var img api.Image
	var err error
	switch {
	case strings.HasPrefix(spec.Image, "/"):
		img, err = d.images.ImportBase(ctx, spec.Image)
		if err != nil {
			return api.Errorf(api.CodeInvalid, "image %s: %v", spec.Image, err)
		}
	case isHTTPURL(spec.Image):
		return api.Errorf(api.CodeInvalid, "image %s: import a URL first: `fvm image import URL --name NAME --checksum sha256:HEX`", spec.Image)
	default:
		if img, err = d.localOrPulled(ctx, spec.Image, spec.Arch); err != nil {
			return err
		}
	}
	markPending(img.Path, spec.Name) // keep prune off it until the spec names it
	if spec.Arch == "" {
		spec.Arch = img.Arch
	}
	if spec.Arch == "" { // a bare disk file says nothing of its arch: assume the host's
		spec.Arch, _ = vm.ParseArch(runtime.GOARCH)
	}
	if img.Arch != "" && spec.Arch != img.Arch {
		return api.Errorf(api.CodeInvalid, "image %s is %s, not %s: drop the architecture or pick a %s image", spec.Image, img.Arch, spec.Arch, spec.Arch)
	}
	spec.BaseImage = img.Path
	return nil
}

// Start boots a stopped VM.
func (d *Daemon) Start(ctx context.Context, name string) (api.VM, error) {
	ctx = context.WithoutCancel(ctx)
	inst, err := d.get(name)
	if err != nil {
		return api.VM{}, err
	}
	d.mu.Lock()
	running := d.entry(name).machine != nil
	d.mu.Unlock()
	if running {
		return api.VM{}, api.Errorf(api.CodeConflict, "vm %q is already running", name)
	}
	done, err := d.begin(name, "starting")
	if err != nil {
		return api.VM{}, err
	}
	m, err := d.opts.Driver.Start(ctx, inst)
	if err != nil { // drivers name the VM in their errors
		done(err)
		d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: vm.Error, Error: err.Error()})
		return api.VM{}, err
	}
	d.mu.Lock()
	d.entry(name).machine = m
	d.mu.Unlock()
	go d.watch(name, m)
	done(nil)
	d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: vm.Running})
	v := d.describe(ctx, inst)
	if a, ok := d.opts.Driver.(interface {
		Accel(*vm.Spec) (accel, notice string, err error)
	}); ok {
		_, v.Notice, _ = a.Accel(&inst.Spec)
	}
	return v, nil
}

// Stop shuts a VM down: ACPI power-off, then a kill after the timeout (or at once with Force).
func (d *Daemon) Stop(ctx context.Context, name string, req api.StopRequest) (api.VM, error) {
	ctx = context.WithoutCancel(ctx)
	inst, err := d.get(name)
	if err != nil {
		return api.VM{}, err
	}
	done, err := d.begin(name, "stopping")
	if err != nil {
		return api.VM{}, err
	}
	err = d.stop(ctx, name, req)
	done(err)
	return d.describe(ctx, inst), err
}

func (d *Daemon) stop(ctx context.Context, name string, req api.StopRequest) error {
	d.mu.Lock()
	m := d.entry(name).machine
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
func (d *Daemon) waitGone(name string, m driver.Machine) {
	for i := 0; i < 100; i++ {
		d.mu.Lock()
		gone := d.entry(name).machine != m
		d.mu.Unlock()
		if gone {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.mu.Lock()
	if e := d.entry(name); e.machine == m {
		e.machine = nil
	}
	d.mu.Unlock()
}

// Restart stops (if running) and starts a VM.
func (d *Daemon) Restart(ctx context.Context, name string, req api.StopRequest) (api.VM, error) {
	if _, err := d.Stop(ctx, name, req); err != nil {
		return api.VM{}, err
	}
	return d.Start(ctx, name)
}

// Remove deletes a VM and everything it owns; a running VM needs force.
func (d *Daemon) Remove(ctx context.Context, name string, force bool) error {
	ctx = context.WithoutCancel(ctx)
	if _, err := d.get(name); err != nil {
		return err
	}
	done, err := d.begin(name, "removing")
	if err != nil {
		return err
	}
	d.mu.Lock()
	running := d.entry(name).machine != nil
	d.mu.Unlock()
	if running && !force {
		done(nil)
		return api.Errorf(api.CodeConflict, "vm %q is running: stop it first (`fvm stop %s`) or use `fvm rm -f %s`", name, name, name)
	}
	if running {
		if err := d.stop(ctx, name, api.StopRequest{Force: true}); err != nil {
			done(err)
			return err
		}
	}
	inst, err := d.get(name)
	if err == nil {
		err = errors.Join(d.opts.Driver.Delete(ctx, inst), d.store.Remove(name))
	}
	if err != nil {
		err = fmt.Errorf("vm %q: remove: %w", name, err)
		done(err)
		return err
	}
	done(nil)
	d.mu.Lock()
	delete(d.vms, name)
	d.mu.Unlock()
	d.events.publish(api.Event{Type: api.EventVMRemoved, VM: name})
	return nil
}

// SSHInfo tells a client how to reach a running VM with its pinned host key.
func (d *Daemon) SSHInfo(ctx context.Context, name string) (api.SSHInfo, error) {
	inst, err := d.get(name)
	if err != nil {
		return api.SSHInfo{}, err
	}
	d.mu.Lock()
	m := d.entry(name).machine
	d.mu.Unlock()
	if m == nil {
		return api.SSHInfo{}, api.Errorf(api.CodeConflict, "vm %q is not running: start it with `fvm start %s`", name, name)
	}
	ep, err := m.SSHEndpoint(ctx)
	if err != nil {
		return api.SSHInfo{}, fmt.Errorf("vm %q: ssh endpoint: %w", name, err)
	}
	hostKey, err := os.ReadFile(inst.Path(store.HostKeyPubFile))
	if err != nil {
		return api.SSHInfo{}, fmt.Errorf("vm %q: host key: %w", name, err)
	}
	return api.SSHInfo{
		Host:         ep.Addr().String(),
		Port:         int(ep.Port()),
		User:         inst.Spec.User,
		HostKey:      strings.TrimSpace(string(hostKey)),
		IdentityFile: d.opts.Layout.UserKey(),
		KnownHosts:   inst.Path(store.KnownHostsFile),
		HostKeyAlias: sshx.HostAlias(name),
	}, nil
}

// LogPath is the VM's serial console log.
func (d *Daemon) LogPath(ctx context.Context, name string) (string, error) {
	inst, err := d.get(name)
	if err != nil {
		return "", err
	}
	return inst.Path(store.SerialLog), nil
}

// Images lists local images.
func (d *Daemon) Images(ctx context.Context) ([]api.Image, error) { return d.images.List() }
