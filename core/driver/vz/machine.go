package vz

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

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

	end *proc.Ending // Gone is closed after the process vanished and its files were removed
}

var (
	_ driver.Machine       = (*Machine)(nil)
	_ driver.Suspender     = (*Machine)(nil)
	_ driver.NativeDisplay = (*Machine)(nil)
)

func newMachine(name string, pid int, helper string, rt store.Runtime, p paths, c *proc.Child) *Machine {
	m := &Machine{name: name, pid: pid, helper: helper, sshPort: rt.SSHPort, p: p, child: c,
		end: proc.NewEnding()}
	m.started, _ = time.Parse(time.RFC3339, rt.StartedAt)
	go m.watch()
	return m
}

// watch records the end of the helper (proc.Ending.Watch); an exit that was
// asked for (stop, suspend) is no failure.
func (m *Machine) watch() {
	m.end.Watch(m.name, m.child, func() bool { return isOurHelper(m.pid, m.helper, m.p.dir) },
		func(err error) error {
			if m.end.Stopping() {
				return nil
			}
			return fmt.Errorf("vm %q: vz helper exited: %w%s", m.name, err, proc.TailSuffix(m.p.log, 3))
		},
		func() error { return removeStale(m.p, m.helper, m.pid) })
}

func (m *Machine) exited() bool { return m.end.Exited() }

// Info is the helper's pid; vz is the accelerator (Hypervisor.framework
// underneath). A resumed guest's clock stood still while it was saved, and vz
// has no guest agent to set it: the host sets it over SSH (ClockStale).
func (m *Machine) Info() driver.MachineInfo {
	return driver.MachineInfo{PID: m.pid, Accel: "vz", Notice: m.notice, StartedAt: m.started,
		Boot: m.boot, ClockStale: m.boot == driver.BootResumed}
}

// Done is closed, after one value, when the helper has ended.
func (m *Machine) Done() <-chan error { return m.end.Done }

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
	if st == vm.Running && m.end.Stopping() {
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
	return m.end.Shutdown(m.name, func() error { _, err := callControl(ctx, m.p.sock, OpStop); return err })
}

// Kill ends the helper with SIGKILL, which ends the VM it owns, and waits
// until it is gone and its files removed.
func (m *Machine) Kill() error {
	return m.end.Kill(m.name, m.pid, "vz helper", isOurHelper(m.pid, m.helper, m.p.dir), killWait)
}

// Suspend has the helper pause the VM, save its state to StateFile and end;
// the next Start resumes from it. It returns once the helper is gone.
func (m *Machine) Suspend(ctx context.Context) error {
	if m.exited() {
		return fmt.Errorf("vm %q: not running: nothing to suspend", m.name)
	}
	ctx, cancel := context.WithTimeout(ctx, suspendWait)
	defer cancel()
	m.end.Ask(true)
	if _, err := callControl(ctx, m.p.sock, OpSuspend); err != nil {
		m.end.Ask(false)
		return fmt.Errorf("vm %q: suspend: %w", m.name, err)
	}
	select {
	case <-m.end.Gone:
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
