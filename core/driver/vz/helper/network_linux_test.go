package helper

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// fakeGuest puts a guest network stack on the VM's end of the link (startFakeGuest).
func fakeGuest(t *testing.T, fd int, n vzd.Network, ports ...uint16) {
	t.Helper()
	stop, err := startFakeGuest(fd, n, ports...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

func testNetwork(t *testing.T, forwards ...vzd.Forward) vzd.Network {
	p, err := vzd.BuildPlan(vzd.PlanInput{Spec: specForTest(), Dir: "/vms/web1", HostArch: specForTest().Arch, SSHPort: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	n := p.Network
	n.Forwards = append(n.Forwards, forwards...)
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func ask(t *testing.T, addr netip.AddrPort, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, line)
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	return strings.TrimSpace(got)
}

// TestNetworkForwards runs the helper's network with a guest stack on the
// VM's end: the 127.0.0.1 forwards (SSH and a -p port) reach the guest's
// fixed address through gvisor-tap-vsock, many connections at once.
func TestNetworkForwards(t *testing.T) {
	web := vzd.Forward{Host: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t))), GuestPort: 80}
	n := testNetwork(t, web)
	nw, err := StartNetwork(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	fakeGuest(t, int(nw.VMFile().Fd()), n, 22, 80)

	ssh := n.Forwards[0].Host
	if got := ask(t, ssh, "hello"); got != "22:hello" {
		t.Fatalf("ssh forward answered %q", got)
	}
	if got := ask(t, web.Host, "GET /"); got != "80:GET /" {
		t.Fatalf("-p forward answered %q", got)
	}
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			c, err := net.Dial("tcp", ssh.String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := strings.Repeat(fmt.Sprint(i), 5000)
			fmt.Fprintln(c, msg)
			got, err := bufio.NewReader(c).ReadString('\n')
			if err == nil && strings.TrimSpace(got) != "22:"+msg {
				err = fmt.Errorf("connection %d got %d bytes back", i, len(got))
			}
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestNetworkGuestPortClosed(t *testing.T) {
	n := testNetwork(t)
	nw, err := StartNetwork(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	fakeGuest(t, int(nw.VMFile().Fd()), n) // nothing listens on 22 yet (sshd not up)
	c, err := net.Dial("tcp", n.Forwards[0].Host.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("a closed guest port: read %q, %v; want the connection closed", b, err)
	}
}

func TestNetworkPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := netip.MustParseAddrPort(ln.Addr().String())
	n := testNetwork(t, vzd.Forward{Host: busy, GuestPort: 8080})
	_, err = StartNetwork(n, nil)
	want := fmt.Sprintf("host port %s is already in use: pick another with -p HOSTPORT:8080", busy)
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	// The SSH forward it had bound is released.
	l2, err := net.Listen("tcp", n.Forwards[0].Host.String())
	if err != nil {
		t.Fatalf("the failed network kept its SSH port: %v", err)
	}
	l2.Close()
}

func TestNetworkConfig(t *testing.T) {
	n := testNetwork(t)
	c := networkConfig(n)
	if c.DHCPStaticLeases[vzd.GuestIP] != n.MAC {
		t.Errorf("DHCP lease %v: want %s fixed to %s", c.DHCPStaticLeases, vzd.GuestIP, n.MAC)
	}
	if c.NAT[vzd.HostLoopbackIP] != "127.0.0.1" || c.GatewayIP != vzd.GatewayIP || c.Subnet != vzd.Subnet || c.MTU != 1500 {
		t.Errorf("config %+v", c)
	}
	if len(c.Forwards) != 0 {
		t.Errorf("forwards are the helper's own (named errors, closed on exit), not gvisor-tap-vsock's: %v", c.Forwards)
	}
}
