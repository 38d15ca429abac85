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
	"github.com/fvmhq/fvm/core/warm"
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

	// warm is the warm snapshots and clones (core/warm).
	warm   *warm.Pool
	spares spares // spare clones kept ready (spare.go)

	// bg is the context of the host's own background work (warm snapshots,
	// port watchers): it ends when Serve returns, which waits for the warm
	// builds to clean up.
	bg       context.Context
	bgCancel context.CancelFunc

	serving bool // Serve holds the host lock: this process hosts the VMs (d.mu)
}

// entry is the host's live knowledge of one VM.
type entry struct {
	vm     *driver.VM    // its driver, bound to its spec once (bind)
	run    *driver.Run   // the running machine and its powers; nil when not running
	ssh    *sshx.Holder  // the held SSH connection of the running machine (exec.go)
	sshErr error         // why there is none
	net    *netWatch     // a cold boot's watch for a network that did not come up (netstall.go)
	ports  *portForwards // its automatic port forwards (ports.go)
	serial *console.Mux  // the running machine's serial port, when it can be attached
	start  *startReport  // the running machine's start, until its first SSH session (startreport.go)
	op     string        // operation in progress: creating, starting, stopping, removing
	err    string        // why the last operation failed
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
	d.warm = d.newWarmPool()
	for _, drv := range opts.Drivers {
		driver.WatchLayers(drv, d.layersFreed)
	}
	return d
}

// Adopt re-attaches to VMs left running by an earlier host, and removes what
// an earlier host left half-made of warm snapshots.
func (d *Daemon) Adopt(ctx context.Context) {
	d.warm.CleanBuilds(ctx)
	defer d.settleSnapshots(ctx)
	insts, _, err := d.store.List()
	if err != nil {
		d.log.Error("list vms", "err", err)
		return
	}
	for _, inst := range insts {
		if ctx.Err() != nil {
			return // the host is stopping (SIGTERM): the next one adopts the rest
		}
		v, err := d.bind(ctx, inst)
		if err != nil || !v.Caps.OutlivesHost {
			continue // nothing of it can still run
		}
		m, err := v.Attach(ctx, inst)
		if err != nil {
			if !errors.Is(err, driver.ErrNotRunning) {
				d.log.Warn("re-adopt failed", "vm", inst.Spec.Name, "err", err)
			}
			continue
		}
		d.log.Info("re-adopted running vm", "vm", inst.Spec.Name, "backend", v.Name())
		r := d.record(inst, v, m)
		d.hold(inst.Spec.Name, inst, r, nil)
		go d.watch(inst.Spec.Name, r)
	}
}

// record records m as the VM's running machine, its powers resolved once,
// with a multiplexer for its serial port when it can be attached.
func (d *Daemon) record(inst *store.Instance, v *driver.VM, m driver.Machine) *driver.Run {
	r := v.Run(m)
	var mux *console.Mux
	if r.Serial != nil {
		mux = console.NewMux(r.Serial.DialSerial, func() (console.LogFile, error) { return v.OpenLog(inst, driver.LogSerial) })
	}
	d.mu.Lock()
	e := d.entry(inst.Spec.Name)
	e.run, e.serial = r, mux
	d.mu.Unlock()
	return r
}

// ended forgets r, the machine that ended, ending its console sessions (after
// they read the last output); d.mu must be held. A newer machine stays.
func (e *entry) ended(r *driver.Run) {
	if e.run != r {
		return
	}
	e.run, e.start = nil, nil
	if e.serial != nil {
		e.serial.Close()
		e.serial = nil
	}
}

// bind returns the VM's driver bound to its spec (driver.Bind): what the VM
// can do, answered once and kept while the host knows the VM.
func (d *Daemon) bind(ctx context.Context, inst *store.Instance) (*driver.VM, error) {
	name := inst.Spec.Name
	d.mu.Lock()
	v := d.entry(name).vm
	d.mu.Unlock()
	if v != nil {
		return v, nil
	}
	drv, err := d.driverOf(&inst.Spec)
	if err != nil {
		return nil, err
	}
	v = driver.Bind(ctx, drv, &inst.Spec)
	d.mu.Lock()
	e := d.entry(name)
	if e.vm == nil {
		e.vm = v
	}
	v = e.vm
	d.mu.Unlock()
	return v, nil
}

// lookup is every VM operation's prologue: the VM, its bound driver and its
// running machine (nil when it does not run).
func (d *Daemon) lookup(ctx context.Context, name string) (*store.Instance, *driver.VM, *driver.Run, error) {
	inst, err := d.get(name)
	if err != nil {
		return nil, nil, nil, err
	}
	v, err := d.bind(ctx, inst)
	if err != nil {
		return inst, nil, nil, err
	}
	d.mu.Lock()
	r := d.entry(name).run
	d.mu.Unlock()
	return inst, v, r, nil
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
	case opSnapshot, opClone: // the VM runs on meanwhile
		return vm.Running
	}
	return vm.Starting
}

// watch waits for a machine to end and records it.
func (d *Daemon) watch(name string, r *driver.Run) {
	err := <-r.Done()
	d.mu.Lock()
	e := d.vms[name]
	busy := e != nil && e.op != "" // e.g. a stop: the end was asked for
	var held *sshx.Holder
	if e != nil && e.run == r {
		held, e.ssh, e.sshErr, e.ports, e.net = e.ssh, nil, nil, nil, nil
		e.ended(r)
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
		d.afterInstall(name, r, err)
	}
}

// Host describes the host process, its backends and what this host lacks.
func (d *Daemon) Host(ctx context.Context) (api.HostInfo, error) {
	info, _ := d.HostBrief(ctx)
	info.Backends = d.backends(ctx)
	for _, drv := range d.opts.Drivers {
		for _, c := range driver.Checks(ctx, drv) {
			info.Checks = append(info.Checks, api.Check{Name: c.Name, OK: c.OK, Detail: c.Detail, Fix: c.Fix})
		}
	}
	return info, nil
}

// HostBrief is who the host is, without its backends and checks: what a
// client's liveness check reads (it must not wait on a slow backend).
func (d *Daemon) HostBrief(context.Context) (api.HostInfo, error) {
	info := api.HostInfo{Version: d.opts.Version, APIRevision: api.Revision, PID: os.Getpid()}
	info.Hostname, _ = os.Hostname() // which machine a remote client talked to
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
	v := d.describe(ctx, inst)
	v.LastStart = loadStartReport(inst)
	return v, nil
}

func (d *Daemon) get(name string) (*store.Instance, error) {
	if err := vm.ValidateName(name); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	inst, err := d.store.Get(name)
	if errors.Is(err, store.ErrNotFound) && !d.store.Exists(name) {
		return nil, api.Errorf(api.CodeNotFound, "vm %q does not exist: see `fvm ls` for your VMs", name)
	}
	if err != nil { // a directory whose spec is missing, unreadable or names another VM
		return nil, &brokenVM{name: name, dir: d.opts.Layout.InstanceDir(name), reason: store.BrokenReason(name, err)}
	}
	return inst, nil
}

// describe derives a VM's state from the live system, never from a file.
func (d *Daemon) describe(ctx context.Context, inst *store.Instance) api.VM {
	name := inst.Spec.Name
	v := api.VM{Spec: inst.Spec, Dir: inst.Dir, CreatedAt: inst.Spec.Created, Backend: inst.Spec.Backend}
	v.Logs = []string{inst.Path(store.SerialLog)}
	b, berr := d.bind(ctx, inst)
	d.mu.Lock()
	e := d.entry(name)
	r, op, lastErr := e.run, e.op, e.err
	d.mu.Unlock()
	v.Error = lastErr
	if berr == nil {
		for _, l := range b.Caps.LogFiles {
			v.Logs = append(v.Logs, inst.Path(l))
		}
	}
	v.State = vm.Stopped
	if r == nil && berr == nil && b.States != nil && b.States.HasSavedState(inst) {
		v.State = vm.Suspended
	}
	if lastErr != "" {
		v.State = vm.Error
	}
	if berr != nil {
		v.State, v.Error = vm.Error, berr.Error()
	}
	if r != nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := r.State(sctx)
		cancel()
		if err != nil {
			st, v.Error = vm.Error, err.Error()
		}
		v.State = st
		info := r.Info()
		v.PID, v.Accel, v.Boot = info.PID, info.Accel, info.Boot
		if !info.StartedAt.IsZero() {
			t := info.StartedAt
			v.StartedAt = &t
		}
		if ep, err := r.SSHEndpoint(ctx); err == nil {
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
	r := d.entry(name).run
	d.mu.Unlock()
	if r == nil {
		return api.SSHInfo{}, notRunning(name)
	}
	ep, err := r.SSHEndpoint(ctx)
	if err != nil {
		return api.SSHInfo{}, fmt.Errorf("vm %q: ssh endpoint: %w", name, err)
	}
	hostKey, err := store.ReadFile(inst.Path(store.HostKeyPubFile))
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

// OpenLog opens the VM's serial console log, through its driver.
func (d *Daemon) OpenLog(ctx context.Context, name string) (io.ReadCloser, error) {
	inst, v, _, err := d.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	f, err := v.OpenLog(inst, driver.LogSerial)
	if err != nil {
		return nil, fmt.Errorf("vm %q: serial log: %w", name, err)
	}
	return f, nil
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
