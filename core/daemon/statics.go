package daemon

import (
	"net"
	"net/netip"

	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// staticForwards serves a VM's -p forwards on this machine through its held SSH
// connection, for a backend that has no port forwarding of its own
// (driver.Caps.StaticForwardsBySSH: libvirt, whose VMs may run on another
// machine), until holding ends with the VM.
func (d *Daemon) staticForwards(name string, inst *store.Instance, h *sshx.Holder) {
	var lns []net.Listener
	for _, p := range inst.Spec.Ports {
		ip := p.HostIP
		if !ip.IsValid() {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		addr := netip.AddrPortFrom(ip, p.HostPort).String()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			d.log.Warn("port forward", "vm", name, "host", addr, "err", err)
			continue
		}
		d.log.Info("port forward over ssh", "vm", name, "host", addr, "guest", p.GuestPort)
		lns = append(lns, ln)
		go tunnel(ln, h, p.GuestPort)
	}
	if len(lns) == 0 {
		return
	}
	<-h.Done()
	for _, ln := range lns {
		ln.Close()
	}
}
