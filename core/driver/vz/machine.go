package vz

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// pollInterval is how often an adopted helper, which is not our child, is checked.
const pollInterval = 250 * time.Millisecond

// killWait bounds how long Kill and Delete wait for the helper to vanish.
const killWait = 10 * time.Second

// suspendWait bounds a save of the VM's state: it writes all of its memory.
const suspendWait = 5 * time.Minute

// Machine is a running vz VM: its helper process, started by this host or
// adopted from an earlier one.
type Machine struct {
	name    string
	pid     int
	helper  string
	sshPort int
	started time.Time
	notice  string
	boot    string // driver.BootCold or BootResumed; "" when adopted
	p       paths
	child   *proc.Child // nil when adopted

	stopping atomic.Bool
	gone     chan struct{} // closed after the process vanished and its files were removed
	done     chan error
}

var (
	_ driver.Machine       = (*Machine)(nil)
	_ driver.Suspender     = (*Machine)(nil)
	_ driver.NativeDisplay = (*Machine)(nil)
)

func newMachine(name string, pid int, helper string, rt store.Runtime, p paths, c *proc.Child) *Machine {
	m := &Machine{name: name, pid: pid, helper: helper, sshPort: rt.SSHPort, p: p, child: c,
		gone: make(chan struct{}), done: make(chan error, 1)}
	m.started, _ = time.Parse(time.RFC3339, rt.StartedAt)
	go m.watch()
	return m
}

// watch waits for the helper to end: through Wait for our child, by polling
// for an adopted one (it is not our child; launchd reaps it).
func (m *Machine) watch() {
	var err error
	if m.child != nil {
		<-m.child.Exited
		if m.child.Err != nil && !m.stopping.Load() {
			err = fmt.Errorf("vm %q: vz helper exited: %w%s", m.name, m.child.Err, tailSuffix(m.p.log))
		}
	} else {
		t := time.NewTicker(pollInterval)
		for range t.C {
			if !isOurHelper(m.pid, m.helper, m.p.dir) {
				break
			}
		}
		t.Stop()
	}
	if rerr := removeStale(m.p, m.helper, m.pid); rerr != nil && err == nil {
		err = fmt.Errorf("vm %q: clean up: %w", m.name, rerr)
	}
	close(m.gone)
	m.done <- err
	close(m.done)
}

func tailSuffix(logPath string) string {
	if t := logTail(logPath); t != "" {
		return ": " + t
	}
	return ""
}

func (m *Machine) exited() bool {
	select {
	case <-m.gone:
		return true
	default:
		return false
	}
}

// Info is the helper's pid; vz is the accelerator (Hypervisor.framework
// underneath). A resumed guest's clock stood still while it was saved, and vz
// has no guest agent to set it: the host sets it over SSH (ClockStale).
func (m *Machine) Info() driver.MachineInfo {
	return driver.MachineInfo{PID: m.pid, Accel: "vz", Notice: m.notice, StartedAt: m.started,
		Boot: m.boot, ClockStale: m.boot == driver.BootResumed}
}

// Done is closed, after one value, when the helper has ended.
func (m *Machine) Done() <-chan error { return m.done }

// SSHEndpoint is the helper's 127.0.0.1 forward to the guest's port 22.
func (m *Machine) SSHEndpoint(context.Context) (netip.AddrPort, error) {
	if m.sshPort <= 0 || m.sshPort > 65535 {
		return netip.AddrPort{}, fmt.Errorf("vm %q: no SSH port recorded", m.name)
	}
	return netip.AddrPortFrom(loopback, uint16(m.sshPort)), nil
}

// State asks the helper; a helper that is gone is a stopped VM.
func (m *Machine) State(ctx context.Context) (vm.State, error) {
	if m.exited() || !isOurHelper(m.pid, m.helper, m.p.dir) {
		return vm.Stopped, nil
	}
	resp, err := callControl(ctx, m.p.sock, OpState)
	if err != nil {
		if m.exited() {
			return vm.Stopped, nil
		}
		return vm.Error, fmt.Errorf("vm %q: vz helper (pid %d) does not answer on its control socket: %w", m.name, m.pid, err)
	}
	st := resp.State.VMState()
	if st == vm.Running && m.stopping.Load() {
		st = vm.Stopping
	}
	return st, nil
}

// checkHello asks an adopted helper who it is.
func (m *Machine) checkHello(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := callControl(ctx, m.p.sock, OpHello)
	if err != nil {
		return fmt.Errorf("vm %q: vz helper (pid %d) does not answer on its control socket: %w", m.name, m.pid, err)
	}
	if h := resp.Hello; h == nil || h.Dir != m.p.dir || h.Name != m.name {
		return fmt.Errorf("vm %q: vz helper (pid %d) answers for another VM (%+v)", m.name, m.pid, resp.Hello)
	}
	return nil
}

// Shutdown asks the guest to power off (the virtual power button); the
// caller may Kill after a timeout.
func (m *Machine) Shutdown(ctx context.Context) error {
	if m.exited() {
		return nil
	}
	m.stopping.Store(true)
	_, err := callControl(ctx, m.p.sock, OpStop)
	if err != nil && m.exited() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vm %q: shutdown: %w", m.name, err)
	}
	return nil
}

// Kill ends the helper with SIGKILL, which ends the VM it owns, and waits
// until it is gone and its files removed.
func (m *Machine) Kill() error {
	if m.exited() {
		return nil
	}
	m.stopping.Store(true)
	if err := proc.KillAndWait(m.pid, "vz helper", isOurHelper(m.pid, m.helper, m.p.dir), m.gone, killWait); err != nil {
		return fmt.Errorf("vm %q: %w", m.name, err)
	}
	return nil
}

// Suspend has the helper pause the VM, save its state to StateFile and end;
// the next Start resumes from it. It returns once the helper is gone.
func (m *Machine) Suspend(ctx context.Context) error {
	if m.exited() {
		return fmt.Errorf("vm %q: not running: nothing to suspend", m.name)
	}
	ctx, cancel := context.WithTimeout(ctx, suspendWait)
	defer cancel()
	m.stopping.Store(true)
	if _, err := callControl(ctx, m.p.sock, OpSuspend); err != nil {
		m.stopping.Store(false)
		return fmt.Errorf("vm %q: suspend: %w", m.name, err)
	}
	select {
	case <-m.gone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("vm %q: suspend: state saved, but the vz helper (pid %d) did not exit: %w", m.name, m.pid, context.Cause(ctx))
	}
}

// ShowWindow asks the helper, which owns the VM and its NSWindow, to show the
// display window and bring it to the front.
func (m *Machine) ShowWindow(ctx context.Context) error {
	if m.exited() {
		return fmt.Errorf("vm %q is not running: start it with `fvm start %s`", m.name, m.name)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := callControl(ctx, m.p.sock, OpShowWindow); err != nil {
		return fmt.Errorf("vm %q: display: %w", m.name, err)
	}
	return nil
}
