// Package vz runs VMs with Apple's Virtualization framework, one helper
// process per VM. A VM must be owned by a process signed with
// com.apple.security.virtualization, and vz's API needs cgo: so the VM lives
// in the helper (fvm-vz, in fvm.app beside the app), which this pure-Go driver
// starts detached, like QEMU, with a pid file and a control socket in the VM
// directory. The VM outlives the host (the menu-bar app or `fvm daemon`) and
// is re-adopted when it comes back.
//
// The driver's logic is plain Go that builds and is tested on every OS: the
// device plan (BuildPlan), the disk (a clone of a raw conversion of the base),
// the control protocol, process recognition. Only the helper (package
// core/driver/vz/helper) talks to Virtualization.framework.
package vz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Options configure the driver; zero values pick the defaults.
type Options struct {
	// HelperPath is the helper executable (default: FindHelper at each use).
	HelperPath string
	// Log receives one-line notes (conversion and clone times).
	Log io.Writer
	// StartTimeout bounds the wait for the helper to report the VM running
	// (default 60s: a restore from saved state reads all of the VM's memory).
	StartTimeout time.Duration
	// MacOS is this Mac's version (default MacOSVersion()); Arch the Mac's
	// architecture (default vm.HostArch()). Tests set them.
	MacOS string
	Arch  vm.Arch
	// Caps replaces the helper's probe (tests).
	Caps *HostCaps
}

// Driver is the vz driver.
type Driver struct {
	opts Options

	mu   sync.Mutex
	caps *HostCaps // the helper's probe, once it succeeded
}

var (
	_ driver.Driver      = (*Driver)(nil)
	_ driver.Checker     = (*Driver)(nil)
	_ driver.StateKeeper = (*Driver)(nil)
)

// New returns a vz driver.
func New(opts Options) *Driver {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if opts.MacOS == "" {
		opts.MacOS = MacOSVersion()
	}
	if opts.Arch == "" {
		opts.Arch = vm.HostArch()
	}
	return &Driver{opts: opts}
}

// Name is "vz".
func (d *Driver) Name() string { return "vz" }

// Caps: raw clones, VMs in helper processes that outlive the host, the
// virtio console in serial.log (read-only: no attach), a display in a native
// window, saved state on macOS 14+ on Apple silicon, virtiofs shares (-v),
// Rosetta on Apple silicon, forwards over SSH, and the NIC's MAC derived from
// the VM's identity, snapshots (disk clones; memory where it saves state).
// No ISO installs, no warm clones (so clones of snapshots boot cold).
func (d *Driver) Caps(_ context.Context, spec *vm.Spec) driver.Caps {
	c := driver.Caps{
		Disk:         driver.DiskRawClone,
		OutlivesHost: true,
		Display:      driver.DisplayNative,
		SaveState:    true,
		Snapshots:    true,
		Shares:       true,
		Rosetta:      true,
		Forwards:     driver.ForwardSSH,
		MAC:          GuestMAC(spec).String(),
		LogFiles:     []string{LogFile},
	}
	c.Off(driver.CapSerial, "vz logs the console to serial.log but cannot attach it")
	c.Off(driver.CapScreenshot, "vz shows the screen in the VM's own window: use Open Display")
	c.Off(driver.CapInstallISO, "vz does not install from ISOs: use --backend qemu")
	c.Off(driver.CapWarmClone, "vz makes no warm snapshots")
	if !d.canSave() {
		c.Off(driver.CapSaveState, "vz saves a VM's state on macOS 14+ on Apple silicon only")
	}
	if d.opts.Arch != vm.ARM64 {
		c.Off(driver.CapRosetta, "Rosetta runs on Apple silicon Macs only")
	}
	return c
}

// canSave: VZVirtualMachine's saveMachineStateTo is macOS 14+, arm64 only,
// and what the helper binary can do decides (probedSave).
func (d *Driver) canSave() bool {
	return d.opts.Arch == vm.ARM64 && macOSAtLeast(d.opts.MacOS, 14) && d.probedSave()
}

func (d *Driver) helper() (string, error) {
	if d.opts.HelperPath != "" {
		return d.opts.HelperPath, nil
	}
	return FindHelper()
}

// hostCaps probes the helper once (a failure is retried on the next call).
func (d *Driver) hostCaps(ctx context.Context) (HostCaps, error) {
	if d.opts.Caps != nil {
		return *d.opts.Caps, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.caps != nil {
		return *d.caps, nil
	}
	h, err := d.helper()
	if err != nil {
		return HostCaps{}, err
	}
	c, err := probe(ctx, h)
	if err != nil {
		return HostCaps{}, err
	}
	d.caps = &c
	return c, nil
}

// Validate refuses what vz cannot run here, wrapping driver.ErrUnsupported, so
// that `--backend auto` falls through to QEMU: installer ISOs, a guest of
// another architecture than the Mac's, macOS before 13, a missing helper,
// sizes beyond vz's limits, --rosetta where Rosetta cannot be shared.
func (d *Driver) Validate(ctx context.Context, spec *vm.Spec) error {
	unsupported := func(err error) error {
		return fmt.Errorf("vm %q: %w: %w", spec.Name, driver.ErrUnsupported, err)
	}
	if !macOSAtLeast(d.opts.MacOS, MinMacOS) {
		return unsupported(errors.New(Unavailable("darwin", d.opts.MacOS)))
	}
	if spec.ISO != "" || spec.AutoInstall || spec.Blank {
		return unsupported(errors.New("vz does not boot installer ISOs (nor blank VMs, which wait for one): use --backend qemu"))
	}
	if spec.Arch != d.opts.Arch {
		return unsupported(fmt.Errorf("vz runs %s guests on this Mac, not %s: use --backend qemu", d.opts.Arch, spec.Arch))
	}
	caps, err := d.hostCaps(ctx)
	if err != nil {
		return unsupported(err)
	}
	if !caps.Supported {
		return unsupported(errors.New("this Mac cannot run VMs (Virtualization.framework finds no hardware virtualization): use --backend qemu"))
	}
	if err := checkLimits(spec, caps.Limits); err != nil {
		return unsupported(err)
	}
	if spec.Rosetta {
		if caps.Rosetta == RosettaNotInstalled { // installed since the last probe?
			d.forgetCaps()
			if caps, err = d.hostCaps(ctx); err != nil {
				return unsupported(err)
			}
		}
		if err := checkRosetta(spec, caps.Rosetta); err != nil {
			return unsupported(err)
		}
	}
	return nil
}

// forgetCaps makes the next hostCaps probe the helper again.
func (d *Driver) forgetCaps() {
	d.mu.Lock()
	d.caps = nil
	d.mu.Unlock()
}

// Create clones the VM's disk from the raw conversion of its base (made now
// if it is the first VM of that base) and grows it to spec.DiskBytes. An
// existing disk is kept. The EFI variable store and the machine identifier
// are made by the helper on first boot.
func (d *Driver) Create(ctx context.Context, inst *store.Instance, in driver.CreateInput) error {
	spec := &inst.Spec
	p := pathsOf(inst.Dir)
	fail := func(err error) error { return fmt.Errorf("vm %q: %w", spec.Name, err) }
	if len(in.Seed) > 0 {
		if err := store.WriteFileAtomic(p.seed, in.Seed, 0o600); err != nil {
			return fail(fmt.Errorf("seed: %w", err))
		}
	}
	if isFile(p.disk) {
		return nil
	}
	if in.Clone != "" { // a clone of a snapshot (snapshot.go)
		return d.createClone(ctx, inst, in.Clone)
	}
	base := in.Base
	if base == nil || base.Path == "" {
		return fail(errors.New("no base image resolved (vz does not install from ISOs)"))
	}
	raw, took, err := RawOf(ctx, base)
	if err != nil {
		return fail(err)
	}
	if took > 0 {
		fmt.Fprintf(d.opts.Log, "vm %q: converted base %s to raw for vz in %s (once per base)\n", spec.Name, base.Path, took.Round(time.Millisecond))
	}
	// Recorded first: prune must keep the conversion from the moment it is cloned.
	if err := saveFacts(inst.Dir, facts{Raw: raw, Base: base.Path}); err != nil {
		return fail(err)
	}
	t0 := time.Now()
	cloned, err := CloneDisk(ctx, raw, p.disk, spec.DiskBytes)
	if err != nil {
		return fail(err)
	}
	how := "cloned"
	if !cloned {
		how = "copied (this filesystem cannot clone)"
	}
	fmt.Fprintf(d.opts.Log, "vm %q: disk %s from %s in %s\n", spec.Name, how, raw, time.Since(t0).Round(time.Millisecond))
	return nil
}

// Start launches the VM's helper detached (its own session) and returns once
// it reports the VM running. A VM with saved state resumes from it. A failed
// start leaves no process, pid file or socket, and its error carries the
// helper's own message (also in LogFile). vz makes no clones: opts.Clone is
// never set for its VMs (Caps).
func (d *Driver) Start(ctx context.Context, inst *store.Instance, _ driver.StartOptions) (driver.Machine, error) {
	spec := &inst.Spec
	p := pathsOf(inst.Dir)
	fail := func(err error) (driver.Machine, error) { return nil, fmt.Errorf("vm %q: %w", spec.Name, err) }

	old, err := loadFacts(p.dir)
	if err != nil {
		return fail(err)
	}
	if pid := proc.ReadPIDFile(p.pid); isOurHelper(pid, old.Helper, p.dir) {
		return fail(fmt.Errorf("already running (vz helper pid %d)", pid))
	}
	if err := removeStale(p, old.Helper, 0); err != nil {
		return fail(err)
	}
	if err := store.CheckSocketPath(p.sock); err != nil {
		return fail(err)
	}
	helper, err := d.helper()
	if err != nil {
		return fail(err)
	}
	caps, err := d.hostCaps(ctx)
	if err != nil {
		return fail(err)
	}
	if !isFile(p.disk) {
		return fail(fmt.Errorf("disk %s is missing: the VM was not created completely; remove it with `fvm rm %s` and run it again", p.disk, spec.Name))
	}
	if err := driver.CheckHostPorts(spec.Ports); err != nil {
		return fail(err)
	}
	sshPort, err := driver.FreeLoopbackPort()
	if err != nil {
		return fail(fmt.Errorf("pick an SSH port: %w", err))
	}
	plan, err := BuildPlan(PlanInput{
		Spec: spec, Dir: p.dir, HostArch: d.opts.Arch, Limits: caps.Limits, SSHPort: sshPort,
		Seed: isFile(p.seed), Restore: isFile(p.state), CanSave: caps.SaveRestore && d.canSave(),
		Rosetta: caps.Rosetta,
	})
	if err != nil {
		return nil, err
	}
	rt := store.Runtime{SSHPort: sshPort, Accel: "vz", StartedAt: time.Now().UTC().Format(time.RFC3339)}
	old.Helper = helper
	// Saved before launch: a host that crashes right after can still recognise the process.
	if err := errors.Join(store.WriteJSON(p.plan, plan), saveFacts(p.dir, old), inst.SaveRuntime(rt)); err != nil {
		return fail(fmt.Errorf("save plan: %w", err))
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(err)
	}
	cmd := exec.Command(helper, HelperRunArgs(p.dir)...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: no signal meant for the host's terminal reaches it, and
	// it lives on when the host exits or crashes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c, err := proc.StartChild(cmd)
	logf.Close()
	if err != nil {
		return fail(fmt.Errorf("launch %s: %w", helper, err))
	}
	if err := d.waitRunning(ctx, c, p); err != nil {
		c.Cmd.Process.Kill()
		<-c.Exited
		return nil, errors.Join(fmt.Errorf("vm %q: %w", spec.Name, err), removeStale(p, helper, c.Cmd.Process.Pid))
	}
	m := newMachine(spec.Name, c.Cmd.Process.Pid, helper, rt, p, c)
	m.boot = driver.BootCold
	if plan.RestoreFrom != "" {
		m.boot, m.notice = driver.BootResumed, "resumed from saved state"
	}
	return m, nil
}

// HelperRunArgs is the helper's command line for the VM in dir: the dir on it
// is how the process is recognised again.
func HelperRunArgs(dir string) []string { return []string{"run", "--dir", dir} }

// waitRunning polls the control socket until the helper reports the VM up,
// the helper exits, ctx ends or the start timeout passes.
func (d *Driver) waitRunning(ctx context.Context, c *proc.Child, p paths) error {
	wctx, cancel := context.WithTimeout(ctx, d.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.Exited:
			if msg := proc.LogTail(p.log, 3); msg != "" {
				return fmt.Errorf("vz helper failed to start the VM: %s", msg)
			}
			return fmt.Errorf("vz helper exited (%v) without a message; see %s", c.Err, p.log)
		default:
		}
		if isSocket(p.sock) {
			actx, acancel := context.WithTimeout(wctx, 2*time.Second)
			resp, err := callControl(actx, p.sock, OpState)
			acancel()
			if err == nil {
				switch resp.State {
				case StateRunning, StatePaused:
					return nil
				}
			}
		}
		select {
		case <-tick.C:
			continue
		case <-c.Exited:
			continue // report its message above
		case <-wctx.Done():
		}
		if ctx.Err() != nil {
			return fmt.Errorf("start canceled: %w", context.Cause(ctx))
		}
		return fmt.Errorf("the vz helper did not report the VM running within %s; see %s", d.opts.StartTimeout, p.log)
	}
}

// Attach re-adopts a helper left by an earlier host: its pid (from the pid
// file) must be alive and be this instance's helper (the same executable,
// this directory on its command line). Otherwise it removes stale files and
// returns driver.ErrNotRunning. A confirmed helper whose control socket does
// not answer is still adopted, so that it can be seen (State reports the
// error) and killed.
func (d *Driver) Attach(ctx context.Context, inst *store.Instance) (driver.Machine, error) {
	p := pathsOf(inst.Dir)
	f, err := loadFacts(p.dir)
	if err != nil {
		return nil, fmt.Errorf("vm %q: %w", inst.Spec.Name, err)
	}
	pid := proc.ReadPIDFile(p.pid)
	if !isOurHelper(pid, f.Helper, p.dir) {
		return nil, errors.Join(fmt.Errorf("vm %q: %w", inst.Spec.Name, driver.ErrNotRunning), removeStale(p, f.Helper, 0))
	}
	rt, err := inst.LoadRuntime()
	if err != nil {
		return nil, fmt.Errorf("vm %q: %w", inst.Spec.Name, err)
	}
	m := newMachine(inst.Spec.Name, pid, f.Helper, rt, p, nil)
	if err := m.checkHello(ctx); err != nil {
		fmt.Fprintf(d.opts.Log, "%v\n", err)
	}
	return m, nil
}

// Delete makes sure no helper of the instance remains; the caller removes the
// directory. The base's raw conversion is shared and stays (prune removes it
// with its base).
func (d *Driver) Delete(_ context.Context, inst *store.Instance) error {
	p := pathsOf(inst.Dir)
	f, _ := loadFacts(p.dir)
	if pid := proc.ReadPIDFile(p.pid); isOurHelper(pid, f.Helper, p.dir) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("vm %q: kill vz helper (pid %d): %w", inst.Spec.Name, pid, err)
		}
		for end := time.Now().Add(killWait); isOurHelper(pid, f.Helper, p.dir); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				return fmt.Errorf("vm %q: vz helper (pid %d) is still there %s after SIGKILL", inst.Spec.Name, pid, killWait)
			}
		}
	}
	return removeStale(p, f.Helper, 0)
}

// HasSavedState reports whether the VM was suspended (Suspend wrote StateFile).
func (d *Driver) HasSavedState(inst *store.Instance) bool { return isFile(pathsOf(inst.Dir).state) }

// DiscardState removes the saved state, so the next Start boots afresh.
func (d *Driver) DiscardState(inst *store.Instance) error {
	err := os.Remove(pathsOf(inst.Dir).state)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isSocket(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&os.ModeSocket != 0
}
