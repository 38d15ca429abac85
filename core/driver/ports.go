package driver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/fvmhq/fvm/core/vm"
)

// Helpers every backend that forwards host ports uses.

// CheckHostPorts fails, naming the port, when a -p host port cannot be bound.
func CheckHostPorts(ports []vm.PortForward) error {
	for _, pf := range ports {
		ip := pf.HostIP
		if !ip.IsValid() {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		addr := netip.AddrPortFrom(ip, pf.HostPort).String()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("host port %s is already in use: pick another with -p HOSTPORT:%d", addr, pf.GuestPort)
			}
			return fmt.Errorf("cannot forward host port %s: %w", addr, err)
		}
		ln.Close()
	}
	return nil
}

// FreeLoopbackPort asks the kernel for a free port on 127.0.0.1.
func FreeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// JoinNotices joins one-line notices for the user with "; ".
func JoinNotices(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
