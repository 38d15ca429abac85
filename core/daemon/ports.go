package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// Automatic port forwards: a TCP port a guest process listens on becomes
// reachable on this machine's 127.0.0.1 at the same port (the next free one if
// taken) within a couple of seconds, and goes away when the guest stops
// listening. One long-lived session on the held SSH connection watches the
// guest's sockets (listenersScript); ports on all guest addresses go through
// the backend's user network (driver.PortForwarder: QEMU's hostfwd), ports on
// the guest's loopback only through a tunnel on the SSH connection.

// Settings of automatic forwards in the host's config file.
const (
	KeyPortsAuto       = "ports.auto"       // default true
	KeyPortsPrivileged = "ports.privileged" // forward ports below 1024 too (default false)
	KeyPortsAddress    = "ports.address"    // host address to listen on (default 127.0.0.1)
)

// portSettings reads the automatic-forward settings (config file, FVM_PORTS_*).
func (d *Daemon) portSettings() (auto, privileged bool, addr netip.Addr) {
	auto, addr = true, netip.AddrFrom4([4]byte{127, 0, 0, 1})
	v, err := config.Load(d.opts.Layout)
	if err != nil {
		return
	}
	if v.IsSet(KeyPortsAuto) {
		auto = v.GetBool(KeyPortsAuto)
	}
	privileged = v.GetBool(KeyPortsPrivileged)
	if a, err := netip.ParseAddr(v.GetString(KeyPortsAddress)); err == nil {
		addr = a
	} else if v.IsSet(KeyPortsAddress) {
		d.log.Warn("ports.address is no IP address: using 127.0.0.1", "value", v.GetString(KeyPortsAddress))
	}
	return
}

// portForwards are a running VM's automatic forwards.
type portForwards struct {
	mu  sync.Mutex
	fwd map[uint16]*activeForward // by guest port
}

type activeForward struct {
	autoForward
	host netip.AddrPort
	ln   net.Listener // the tunnel's listener (viaSSH)
}

// watchPorts follows the guest's listening sockets for as long as the VM runs
// (its held connection is open), keeping the automatic forwards in step.
func (d *Daemon) watchPorts(name string, inst *store.Instance, m *driver.Run, h *sshx.Holder, pf *portForwards) {
	auto, privileged, addr := d.portSettings()
	if !auto || inst.Spec.NoAutoPorts {
		return
	}
	static := map[uint16]bool{}
	for _, p := range inst.Spec.Ports {
		static[p.GuestPort] = true
	}
	policy := portPolicy{Privileged: privileged, Static: static}
	defer d.dropForwards(name, m, pf)
	for {
		err := d.watchOnce(name, m, h, pf, policy, addr)
		if errors.Is(err, sshx.ErrHolderClosed) || errors.Is(err, sshx.ErrHostKeyMismatch) {
			return
		}
		select { // the session ended (connection lost, guest rebooting): start it again
		case <-time.After(time.Second):
		case <-d.bg.Done():
			return
		}
		if h.Ready(d.bg) != nil {
			return
		}
	}
}

func (d *Daemon) watchOnce(name string, m *driver.Run, h *sshx.Holder, pf *portForwards, policy portPolicy, addr netip.Addr) error {
	p, err := h.Start(d.bg, sshx.ProcessOptions{Command: "bash -c " + sshx.ShellQuote(listenersScript)})
	if err != nil {
		return err
	}
	defer p.Close()
	p.Stdin().Close()
	go io.Copy(io.Discard, p.Stderr())
	sc := bufio.NewScanner(p.Stdout())
	scanLines(sc)
	for sc.Scan() {
		ls, err := parseListeners(sc.Text())
		if err != nil {
			d.log.Warn("port watcher", "vm", name, "err", err)
			continue
		}
		if d.applyForwards(name, m, h, pf, policy.wanted(ls), addr) {
			d.events.publish(api.Event{Type: api.EventVMPorts, VM: name, Ports: d.portsOf(name)})
		}
	}
	p.Wait()
	return nil
}

// applyForwards brings the forwards in line with want; it reports a change.
func (d *Daemon) applyForwards(name string, m *driver.Run, h *sshx.Holder, pf *portForwards, want map[uint16]string, addr netip.Addr) bool {
	fw := m.Forward
	pf.mu.Lock()
	defer pf.mu.Unlock()
	have := map[uint16]autoForward{}
	for gp, f := range pf.fwd {
		have[gp] = f.autoForward
	}
	if fw == nil { // only tunnels then
		for gp := range want {
			want[gp] = viaSSH
		}
	}
	remove, add := reconcile(have, want)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, f := range remove {
		a := pf.fwd[f.GuestPort]
		d.closeForward(ctx, m, a)
		delete(pf.fwd, f.GuestPort)
		d.log.Info("automatic forward removed", "vm", name, "guest", f.GuestPort, "host", a.host)
	}
	for _, f := range add {
		a, err := d.openForward(ctx, fw, h, f, addr)
		if err != nil {
			d.log.Warn("automatic forward failed", "vm", name, "guest", f.GuestPort, "err", err)
			continue
		}
		pf.fwd[f.GuestPort] = a
		d.log.Info("automatic forward", "vm", name, "guest", f.GuestPort, "host", a.host, "via", f.Via)
	}
	return len(remove)+len(add) > 0
}

// openForward listens on addr at the guest's port, or the next free one.
func (d *Daemon) openForward(ctx context.Context, fw driver.PortForwarder, h *sshx.Holder, f autoForward, addr netip.Addr) (*activeForward, error) {
	for tries := 0; tries < 5; tries++ {
		hp := pickHostPort(f.GuestPort, func(p uint16) bool { return portFree(addr, p) })
		if hp == 0 {
			return nil, fmt.Errorf("no free host port near %d", f.GuestPort)
		}
		a := &activeForward{autoForward: f, host: netip.AddrPortFrom(addr, hp)}
		a.HostPort = hp
		if f.Via == viaSSH {
			ln, err := net.Listen("tcp", a.host.String())
			if err != nil {
				continue // taken meanwhile
			}
			a.ln = ln
			go tunnel(ln, h, f.GuestPort)
			return a, nil
		}
		if err := fw.AddForward(ctx, a.host, f.GuestPort); err != nil {
			if portFree(addr, hp) {
				return nil, err // not a race for the port: QEMU refused
			}
			continue
		}
		return a, nil
	}
	return nil, fmt.Errorf("host ports near %d keep being taken", f.GuestPort)
}

func (d *Daemon) closeForward(ctx context.Context, m *driver.Run, a *activeForward) {
	if a.ln != nil {
		a.ln.Close()
		return
	}
	if m.Forward != nil {
		if err := m.Forward.RemoveForward(ctx, a.host); err != nil {
			d.log.Warn("remove automatic forward", "host", a.host, "err", err)
		}
	}
}

// dropForwards ends every automatic forward of a VM whose watcher ends.
func (d *Daemon) dropForwards(name string, m *driver.Run, pf *portForwards) {
	pf.mu.Lock()
	n := len(pf.fwd)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	for gp, a := range pf.fwd {
		d.closeForward(ctx, m, a)
		delete(pf.fwd, gp)
	}
	cancel()
	pf.mu.Unlock()
	if n > 0 {
		d.events.publish(api.Event{Type: api.EventVMPorts, VM: name, Ports: d.portsOf(name)})
	}
}

func portFree(addr netip.Addr, p uint16) bool {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, p).String())
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// tunnel carries each connection to ln to the guest's loopback port over SSH.
func tunnel(ln net.Listener, h *sshx.Holder, guestPort uint16) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			cl, err := h.Client(ctx)
			cancel()
			if err != nil {
				return
			}
			g, err := cl.Conn().Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(guestPort)))
			if err != nil {
				return
			}
			defer g.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(g, c); done <- struct{}{} }()
			go func() { io.Copy(c, g); done <- struct{}{} }()
			<-done
		}()
	}
}

// portsOf lists a VM's forwards: the static -p ones, then the automatic ones.
func (d *Daemon) portsOf(name string) []api.Port {
	inst, err := d.store.Get(name)
	if err != nil {
		return nil
	}
	out := []api.Port{}
	for _, p := range inst.Spec.Ports {
		out = append(out, api.Port{HostIP: p.HostIP.String(), HostPort: p.HostPort, GuestPort: p.GuestPort, Via: "static"})
	}
	d.mu.Lock()
	pf := d.entry(name).ports
	d.mu.Unlock()
	if pf != nil {
		pf.mu.Lock()
		var auto []api.Port
		for _, a := range pf.fwd {
			auto = append(auto, api.Port{HostIP: a.host.Addr().String(), HostPort: a.HostPort, GuestPort: a.GuestPort, Auto: true, Via: a.Via})
		}
		pf.mu.Unlock()
		sort.Slice(auto, func(i, j int) bool { return auto[i].GuestPort < auto[j].GuestPort })
		out = append(out, auto...)
	}
	return out
}

// Ports lists a VM's port forwards (`fvm ports`).
func (d *Daemon) Ports(ctx context.Context, name string) ([]api.Port, error) {
	if _, err := d.get(name); err != nil {
		return nil, err
	}
	return d.portsOf(name), nil
}
