package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// machine is a running domain, as one fvm host follows it. libvirt owns the
// domain; the machine polls its state (a VM stopped in virsh or virt-manager
// ends here too), keeps the local copy of its serial log in step, and serves
// its SSH channel on a loopback port for the host's held connection.
type machine struct {
	d    *Driver
	inst *store.Instance
	h    *vmHost
	dom  golibvirt.Domain
	info driver.MachineInfo

	done    chan error
	ended   chan struct{}
	stop    context.CancelFunc
	ctx     context.Context
	sshLn   net.Listener
	nudge   chan struct{} // more serial output is there
	endOnce sync.Once
}

var (
	_ driver.Machine       = (*machine)(nil)
	_ driver.Suspender     = (*machine)(nil)
	_ driver.SerialPort    = (*machine)(nil)
	_ driver.VNCDisplay    = (*machine)(nil)
	_ driver.Screenshotter = (*machine)(nil)
)

// pollEvery is how often a machine asks libvirt for its domain's state.
const pollEvery = time.Second

func (d *Driver) newMachine(inst *store.Instance, h *vmHost, dom golibvirt.Domain, info driver.MachineInfo) *machine {
	ctx, cancel := context.WithCancel(context.Background())
	m := &machine{d: d, inst: inst, h: h, dom: dom, info: info, done: make(chan error, 1), ended: make(chan struct{}),
		ctx: ctx, stop: cancel, nudge: make(chan struct{}, 1)}
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		m.sshLn = ln
		go m.serveSSH()
	}
	go m.poll()
	go m.syncSerial()
	return m
}

func (m *machine) Info() driver.MachineInfo { return m.info }

// State maps the domain's state.
func (m *machine) State(ctx context.Context) (vm.State, error) {
	select {
	case <-m.ended:
		return vm.Stopped, nil
	default:
	}
	l, err := m.h.c.get(ctx)
	if err != nil {
		return vm.Error, err
	}
	st, _, err := l.DomainGetState(m.dom, 0)
	if err != nil {
		return vm.Error, err
	}
	switch golibvirt.DomainState(st) {
	case golibvirt.DomainShutoff, golibvirt.DomainCrashed:
		return vm.Stopped, nil
	case golibvirt.DomainShutdown:
		return vm.Stopping, nil
	}
	return vm.Running, nil
}

// Shutdown presses the ACPI power button.
func (m *machine) Shutdown(ctx context.Context) error {
	l, err := m.h.c.get(ctx)
	if err != nil {
		return err
	}
	return l.DomainShutdownFlags(m.dom, golibvirt.DomainShutdownAcpiPowerBtn)
}

// Kill destroys the domain (libvirt's hard power-off).
func (m *machine) Kill() error {
	l, err := m.h.c.get(context.Background())
	if err != nil {
		return err
	}
	err = l.DomainDestroyFlags(m.dom, 0)
	if err != nil && !isNotFound(err) {
		if st, _, e := l.DomainGetState(m.dom, 0); e == nil && golibvirt.DomainState(st) == golibvirt.DomainShutoff {
			return nil // it had ended meanwhile
		}
		return err
	}
	m.wake()
	return nil
}

func (m *machine) Done() <-chan error { return m.done }

// poll follows the domain until it is shut off (by fvm, by the guest, or by
// someone in virsh), then ends the machine. A daemon that cannot be reached
// for a while is asked again: the domain runs on without fvm.
func (m *machine) poll() {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		l, err := m.h.c.get(m.ctx)
		if err != nil {
			continue
		}
		st, reason, err := l.DomainGetState(m.dom, 0)
		if isNotFound(err) {
			m.end(errors.New("its domain was undefined outside fvm"))
			return
		}
		if err != nil {
			continue
		}
		switch golibvirt.DomainState(st) {
		case golibvirt.DomainShutoff:
			var err error
			if golibvirt.DomainShutoffReason(reason) == golibvirt.DomainShutoffCrashed {
				err = errors.New("the hypervisor crashed")
			}
			m.end(err)
			return
		case golibvirt.DomainCrashed:
			m.end(errors.New("the guest crashed"))
			return
		}
	}
}

// wake makes poll look now (after a kill).
func (m *machine) wake() {}

func (m *machine) end(err error) {
	m.endOnce.Do(func() {
		m.syncSerialNow()
		m.h.vols.closeData()
		m.stop()
		if m.sshLn != nil {
			m.sshLn.Close()
		}
		close(m.ended)
		m.done <- err
		close(m.done)
	})
}

// SSHEndpoint is a loopback port on this machine that reaches the guest's sshd
// through the domain's SSH channel (serveSSH).
func (m *machine) SSHEndpoint(ctx context.Context) (netip.AddrPort, error) {
	if m.sshLn == nil {
		return netip.AddrPort{}, errors.New("no loopback port for the SSH channel")
	}
	return m.sshLn.Addr().(*net.TCPAddr).AddrPort(), nil
}

// serveSSH carries each connection to the loopback port to the guest's sshd on
// the virtio-serial channel, one at a time (the channel has one client; the
// guest serves one connection per sshd). The host holds one connection, so in
// practice that one is it.
func (m *machine) serveSSH() {
	for {
		c, err := m.sshLn.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			ctx, cancel := context.WithTimeout(m.ctx, 15*time.Second)
			s, err := m.dialChannel(ctx, SSHChannel)
			cancel()
			if err != nil {
				fmt.Fprintf(m.d.opts.Log, "vm %s: ssh channel: %v\n", m.inst.Spec.Name, err)
				return
			}
			defer s.Close()
			pipe(c, s)
		}()
	}
}

// dialChannel opens one of the domain's virtio-serial channels as a stream.
func (m *machine) dialChannel(ctx context.Context, name string) (net.Conn, error) {
	return openStream(ctx, m.h.c.t, procDomainOpenChannel, m.dom, name, 0)
}

// DialSerial opens the domain's serial console (taking it from a client a
// dead fvm host left); its output also lands in the log, which is what the
// host reads (each byte here nudges the log copy to catch up at once).
func (m *machine) DialSerial(ctx context.Context) (net.Conn, error) {
	c, err := openStream(ctx, m.h.c.t, procDomainOpenConsole, m.dom, "", uint32(golibvirt.DomainConsoleForce))
	if err != nil {
		return nil, err
	}
	return &nudgeConn{Conn: c, nudge: m.nudge}, nil
}

// nudgeConn tells the serial log's copier that output came.
type nudgeConn struct {
	net.Conn
	nudge chan struct{}
}

func (c *nudgeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		select {
		case c.nudge <- struct{}{}:
		default:
		}
	}
	return n, err
}

// Suspend saves the domain with libvirt's managed save (its memory on the
// libvirt host); the next start resumes it.
func (m *machine) Suspend(ctx context.Context) error {
	l, err := m.h.c.get(ctx)
	if err != nil {
		return err
	}
	if err := l.DomainManagedSave(m.dom, 0); err != nil {
		return fmt.Errorf("vm %q: libvirt managed save: %w", m.inst.Spec.Name, err)
	}
	return nil
}

// setClock sets a resumed guest's clock through its agent (libvirt's
// virDomainSetTime); the host sets it over SSH when that fails.
func (m *machine) setClock(ctx context.Context) {
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			l, err := m.h.c.get(m.ctx)
			if err == nil {
				now := time.Now()
				if l.DomainSetTime(m.dom, now.Unix(), uint32(now.Nanosecond()), 0) == nil {
					return
				}
			}
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
}

// pipe copies both ways until either side ends.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(a, b); done <- struct{}{} }()
	go func() { io.Copy(b, a); done <- struct{}{} }()
	<-done
}
