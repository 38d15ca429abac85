// Package daemon is the fvm host: it owns the VM registry, runs each VM's
// lifecycle through the driver of its backend, re-adopts VMs left running by an
// earlier host and publishes events. It implements api/server.Service. It
// imports no concrete driver (a test enforces it): core/host wires them in.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/console"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Options configure a Daemon.
type Options struct {
	Layout store.Layout
	// Drivers are this platform's backends in order of preference: `--backend
	// auto` picks the first whose Validate passes. At least one is needed.
	Drivers []driver.Driver
	// Unavailable are backends this build knows but this host cannot run, with
	// why: asking for one fails with that reason (vz on Linux).
	Unavailable []driver.Unavailable
	Version     string
	Log         *slog.Logger
}

// Daemon is the host's VM registry. Every modifying operation on a VM holds that
// VM's slot for its duration, so two operations on one VM never interleave.
type Daemon struct {
	opts   Options
	store  *store.Store
	images *image.Service
	events *broker
	log    *slog.Logger
	// console is the web console (console.go); it listens while Serve runs.
	console *console.Server

	mu         sync.Mutex
	vms        map[string]*entry
	consoleErr error // why the web console does not listen, if it does not

	warmOnce sync.Once
	warm     *warming // warm snapshots being made (warm.go)

	// bg is the context of the host's own background work (warm snapshots):
	// it ends when Serve returns, which waits for that work (bgWG) to clean up.
	bg       context.Context
	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup

	serving bool // Serve holds the host lock: this process hosts the VMs (d.mu)
}

// entry is the host's live knowledge of one VM.
type entry struct {
	machine driver.Machine // nil when not running
	ssh     *sshx.Holder   // the held SSH connection of the running machine (exec.go)
	sshErr  error          // why there is none
	ports   *portForwards  // its automatic port forwards (ports.go)
	serial  *console.Mux   // the running machine's serial port, when it can be attached
	op      string         // operation in progress: creating, starting, stopping, removing
	err     string         // why the last operation failed
}

// New makes a daemon; call Adopt before serving.
func New(opts Options) *Daemon {
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bg, cancel := context.WithCancel(context.Background())
	d := &Daemon{
		opts:     opts,
		store:    store.New(opts.Layout),
		events:   newBroker(),
		log:      opts.Log,
		vms:      map[string]*entry{},
		bg:       bg,
		bgCancel: cancel,

		consoleErr: errors.New("the host is not serving"),
	}
	d.images = d.newImageService()
	d.console = console.New(console.Options{Host: consoleHost{d}, Log: opts.Log})
	return d
}

// Adopt re-attaches to VMs left running by an earlier host, and removes what
// an earlier host left half-made of warm snapshots.
func (d *Daemon) Adopt(ctx context.Context) {
	d.cleanWarmBuilds(ctx)
	insts, _, err := d.store.List()
	if err != nil {
		d.log.Error("list vms", "err", err)
		return
	}
	for _, inst := range insts {
		drv, err := d.driverOf(&inst.Spec)
		if err != nil || !drv.Features().OutlivesHost {
			continue // nothing of it can still run
		}
		m, err := drv.Attach(ctx, inst)
		if err != nil {
			if !errors.Is(err, driver.ErrNotRunning) {
				d.log.Warn("re-adopt failed", "vm", inst.Spec.Name, "err", err)
			}
			continue
		}
		d.log.Info("re-adopted running vm", "vm", inst.Spec.Name, "backend", drv.Name())
		d.mu.Lock()
		d.entry(inst.Spec.Name).run(inst, drv, m)
		d.mu.Unlock()
		d.hold(inst.Spec.Name, inst, m, nil)
		go d.watch(inst.Spec.Name, m)
	}
}

// run records m as the VM's running machine, with a multiplexer for its
// serial port when the driver serves one; d.mu must be held.
func (e *entry) run(inst *store.Instance, drv driver.Driver, m driver.Machine) {
	e.machine = m
	if f := drv.Features(); f.SerialSocket != "" {
		e.serial = console.NewMux(inst.Path(f.SerialSocket), inst.Path(store.SerialLog))
	}
}

// ended forgets m, the machine that ended, ending its console sessions (after
// they read the last output); d.mu must be held. A newer machine stays.
func (e *entry) ended(m driver.Machine) {
	if e.machine != m {
		return
	}
	e.machine = nil
	if e.serial != nil {
		e.serial.Close()
		e.serial = nil
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
	var once sync.Once // done may be called again by releaseOnPanic
	return func(err error) {
		once.Do(func() {
			d.mu.Lock()
			e.op = ""
			e.err = ""
			if err != nil {
				e.err = err.Error()
			}
			d.mu.Unlock()
			d.publishSettled(name)
		})
	}, nil
}

// releaseOnPanic, deferred after begin, frees the VM's slot when the operation
// panics (and panics on, for the server to answer 500 and log the stack), so
// one bug never leaves a VM "busy" until the host restarts.
func releaseOnPanic(done func(error)) {
	if r := recover(); r != nil {
		done(fmt.Errorf("the host failed: %v", r))
		panic(r)
	}
}

func opState(op string) vm.State {
	switch op {
	case "stopping", "removing", "suspending":
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
	var held *sshx.Holder
	if e != nil && e.machine == m {
		held, e.ssh, e.sshErr, e.ports = e.ssh, nil, nil, nil
		e.ended(m)
		if err != nil && e.op == "" {
			e.err = fmt.Sprintf("hypervisor exited: %v", err)
		}
	}
	d.mu.Unlock()
	if held != nil {
		held.Close()
	}
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

// Host describes the host process, its backends and what this host lacks.
func (d *Daemon) Host(ctx context.Context) (api.HostInfo, error) {
	info := api.HostInfo{Version: d.opts.Version, APIRevision: api.Revision, PID: os.Getpid(), Backends: d.backends()}
	info.Hostname, _ = os.Hostname() // which machine a remote client talked to
	for _, drv := range d.opts.Drivers {
		if c, ok := drv.(driver.Checker); ok {
			info.Checks = append(info.Checks, c.Checks(ctx)...)
		}
	}
	return info, nil
}

// Subscribe streams events.
func (d *Daemon) Subscribe() (<-chan api.Event, func()) { return d.events.subscribe() }

// List returns every VM with its live state, broken ones (api.VM.Broken) too.
func (d *Daemon) List(ctx context.Context) ([]api.VM, error) {
	insts, broken, err := d.store.List()
	if err != nil {
		return nil, hostError(fmt.Errorf("list vms: %w", err))
	}
	out := make([]api.VM, len(insts), len(insts)+len(broken))
	// Each describe reads files and may ask a hypervisor: a few at a time.
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < min(4, len(insts)); w++ {
		wg.Go(func() {
			for i := range next {
				out[i] = d.describe(ctx, insts[i])
			}
		})
	}
	for i := range insts {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, b := range broken {
		out = append(out, brokenDesc(b.Name, b.Dir, b.Reason))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

func brokenDesc(name, dir, reason string) api.VM {
	return api.VM{Spec: vm.Spec{Name: name}, Dir: dir, State: vm.Broken, Broken: reason, Error: reason}
}

// brokenVM is the error of get for a VM whose spec cannot be read.
type brokenVM struct{ name, dir, reason string }

func (b *brokenVM) Error() string { return fmt.Sprintf("vm %q is broken: %s", b.name, b.reason) }

// APICode: a broken VM exists but cannot be used, only removed.
func (b *brokenVM) APICode() string { return api.CodeConflict }

// Get returns one VM (a broken one as such, with why).
func (d *Daemon) Get(ctx context.Context, name string) (api.VM, error) {
	inst, err := d.get(name)
	var b *brokenVM
	if errors.As(err, &b) {
		return brokenDesc(b.name, b.dir, b.reason), nil
	}
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
	if errors.Is(err, store.ErrNotFound) && !d.store.Exists(name) {
		return nil, api.Errorf(api.CodeNotFound, "vm %q does not exist: see `fvm ls` for your VMs", name)
	}
	if err != nil { // a directory whose spec is missing or unreadable
		reason := "its " + store.SpecFile + " is missing"
		if !errors.Is(err, store.ErrNotFound) {
			reason = fmt.Sprintf("its %s cannot be read (%v)", store.SpecFile, err)
		}
		return nil, &brokenVM{name: name, dir: d.opts.Layout.InstanceDir(name), reason: reason + ": remove it with `fvm rm " + name + "`"}
	}
	return inst, nil
}

// describe derives a VM's state from the live system, never from a file.
func (d *Daemon) describe(ctx context.Context, inst *store.Instance) api.VM {
	name := inst.Spec.Name
	d.mu.Lock()
	e := d.entry(name)
	m, op, lastErr := e.machine, e.op, e.err
	d.mu.Unlock()

	v := api.VM{Spec: inst.Spec, Dir: inst.Dir, CreatedAt: inst.Spec.Created, Backend: inst.Spec.Backend, Error: lastErr}
	v.Logs = []string{inst.Path(store.SerialLog)}
	drv, derr := d.driverOf(&inst.Spec)
	if derr == nil {
		f := drv.Features()
		for _, l := range f.LogFiles {
			v.Logs = append(v.Logs, inst.Path(l))
		}
		if f.Display && f.VNCSocket != "" {
			v.VNCSocket = inst.Path(f.VNCSocket)
		}
	}
	v.State = vm.Stopped
	if keeper, ok := drv.(driver.StateKeeper); ok && m == nil && derr == nil && keeper.HasSavedState(inst) {
		v.State = vm.Suspended
	}
	if lastErr != "" {
		v.State = vm.Error
	}
	if derr != nil {
		v.State, v.Error = vm.Error, derr.Error()
	}
	if m != nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := m.State(sctx)
		cancel()
		if err != nil {
			st, v.Error = vm.Error, err.Error()
		}
		v.State = st
		info := m.Info()
		v.PID, v.Accel, v.Boot = info.PID, info.Accel, info.Boot
		if !info.StartedAt.IsZero() {
			t := info.StartedAt
			v.StartedAt = &t
		}
		if ep, err := m.SSHEndpoint(ctx); err == nil {
			v.SSHPort = int(ep.Port())
		}
	}
	if op != "" {
		v.State = opState(op)
	}
	return v
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

// publishSettled tells subscribers the state a VM settled in once an operation
// released its slot: events sent while the slot was held said "stopping" or
// "starting", and a menu must not stay on them.
func (d *Daemon) publishSettled(name string) {
	inst, err := d.store.Get(name)
	if err != nil {
		return // removed, or never made: vm.removed (or nothing) says so
	}
	v := d.describe(context.Background(), inst)
	d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: v.State, Error: v.Error})
}
