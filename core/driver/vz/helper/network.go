package helper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"github.com/containers/gvisor-tap-vsock/pkg/virtualnetwork"
	"golang.org/x/sys/unix"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// Network is a VM's user-mode network, inside its helper: a gvisor-tap-vsock
// virtual network (gateway, DHCP with the guest's lease fixed to its MAC, DNS,
// NAT to the Mac) on one end of a datagram socket pair, the VM's file-handle
// network attachment on the other; and the host's 127.0.0.1 forwards (SSH,
// -p) dialled into the guest through it. Plain Go: tested on every OS.
type Network struct {
	vmFile *os.File
	vn     *virtualnetwork.VirtualNetwork
	cancel context.CancelFunc
	lns    []net.Listener
	wg     sync.WaitGroup
	log    *slog.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // spliced connections, closed by Close
	closed bool
}

// Apple's advice for file-handle attachments: a send buffer of at least
// 1 MiB and a receive buffer of at least twice that.
const (
	netSendBuffer = 1 << 20
	netRecvBuffer = 4 << 20
)

// StartNetwork brings up n's network and listens on its forwards; a host port
// that cannot be bound fails it, naming the port.
func StartNetwork(n vzd.Network, log *slog.Logger) (_ *Network, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		return nil, fmt.Errorf("network: socket pair: %w", err)
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, netSendBuffer)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, netRecvBuffer)
	}
	vmFile := os.NewFile(uintptr(fds[0]), "vz-net-vm")
	hostFile := os.NewFile(uintptr(fds[1]), "vz-net-host")
	hostConn, err := net.FileConn(hostFile)
	hostFile.Close()
	if err != nil {
		vmFile.Close()
		return nil, fmt.Errorf("network: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nw := &Network{vmFile: vmFile, cancel: cancel, log: log, conns: map[net.Conn]struct{}{}}
	defer func() {
		if err != nil {
			hostConn.Close()
			nw.Close()
		}
	}()
	nw.vn, err = virtualnetwork.New(networkConfig(n))
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	nw.wg.Add(1)
	go func() {
		defer nw.wg.Done()
		// Ends when the socket closes (Close, or the VM's side going away).
		if err := nw.vn.AcceptVfkit(ctx, hostConn); err != nil && ctx.Err() == nil {
			log.Warn("network: the VM's link ended", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { hostConn.Close() })
	for _, f := range n.Forwards {
		ln, err := net.Listen("tcp", f.Host.String())
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("host port %s is already in use: pick another with -p HOSTPORT:%d", f.Host, f.GuestPort)
			}
			return nil, fmt.Errorf("forward host port %s: %w", f.Host, err)
		}
		nw.lns = append(nw.lns, ln)
		guest := net.JoinHostPort(n.GuestIP, strconv.Itoa(int(f.GuestPort)))
		nw.wg.Add(1)
		go nw.forward(ctx, ln, guest)
	}
	return nw, nil
}

// networkConfig is the gvisor-tap-vsock configuration for n.
func networkConfig(n vzd.Network) *types.Configuration {
	return &types.Configuration{
		MTU:               n.MTU,
		Subnet:            n.Subnet,
		GatewayIP:         n.GatewayIP,
		GatewayMacAddress: n.GatewayMAC,
		// The guest's lease is fixed to its MAC: the forwards dial GuestIP.
		DHCPStaticLeases: map[string]string{n.GuestIP: n.MAC},
		// HostLoopbackIP answers ARP and is translated to the Mac's loopback.
		GatewayVirtualIPs: []string{n.HostLoopbackIP},
		NAT:               map[string]string{n.HostLoopbackIP: "127.0.0.1"},
		DNS: []types.Zone{{
			Name:    "fvm.internal.",
			Records: []types.Record{{Name: "gateway", IP: net.ParseIP(n.GatewayIP)}, {Name: "host", IP: net.ParseIP(n.HostLoopbackIP)}},
		}},
		Protocol: types.VfkitProtocol,
	}
}

// forward accepts host connections on ln and splices each to guest.
func (nw *Network) forward(ctx context.Context, ln net.Listener, guest string) {
	defer nw.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				nw.log.Warn("network: forward stopped", "listen", ln.Addr().String(), "err", err)
			}
			return
		}
		nw.wg.Add(1)
		go func() {
			defer nw.wg.Done()
			defer nw.track(c)()
			g, err := nw.vn.DialContextTCP(ctx, guest)
			if err != nil {
				nw.log.Debug("network: guest not reachable", "guest", guest, "err", err)
				return // the client sees its connection close, like QEMU's hostfwd before sshd listens
			}
			defer nw.track(g)()
			splice(c, g)
		}()
	}
}

// track registers c for Close and returns what closes and forgets it.
func (nw *Network) track(c net.Conn) func() {
	nw.mu.Lock()
	if nw.closed {
		c.Close() // Close has swept already: do not outlive it
	} else {
		nw.conns[c] = struct{}{}
	}
	nw.mu.Unlock()
	return func() {
		nw.mu.Lock()
		delete(nw.conns, c)
		nw.mu.Unlock()
		c.Close()
	}
}

// splice copies both ways until both directions are done, passing on
// half-closes so that protocols which shut down their write side work.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go copyHalf(a, b)
	go copyHalf(b, a)
	wg.Wait()
}

// VMFile is the VM's end of the link, for vz's file-handle attachment.
func (nw *Network) VMFile() *os.File { return nw.vmFile }

// Close stops the forwards and the link.
func (nw *Network) Close() error {
	nw.cancel()
	for _, ln := range nw.lns {
		ln.Close()
	}
	nw.mu.Lock()
	nw.closed = true
	for c := range nw.conns {
		c.Close()
	}
	nw.mu.Unlock()
	err := nw.vmFile.Close()
	nw.wg.Wait()
	return err
}
