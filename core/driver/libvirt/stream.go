package libvirt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
	_ "unsafe" // go:linkname, below

	golibvirt "github.com/digitalocean/go-libvirt"
)

// A libvirt stream as a net.Conn: the guest's SSH port (a virtio-serial
// channel, virDomainOpenChannel) and its serial console (virDomainOpenConsole)
// are byte streams in both directions over the RPC connection, so the same
// code reaches a VM on this machine or behind qemu+ssh://.
//
// Each stream gets an RPC connection of its own: go-libvirt hands a stream's
// incoming data to the writer from the connection's one reader goroutine, so a
// slow reader of one stream would stall every call on a shared connection.
// Closing the conn closes that connection, which ends the stream in libvirtd.

// Remote procedures (libvirt's remote_protocol.x).
const (
	remoteProgram         = 0x20008086
	procDomainOpenConsole = 201
	procDomainOpenChannel = 296
)

// lvResponse mirrors go-libvirt's internal response type (rpc.go), which
// requestStream returns.
type lvResponse struct {
	Payload []byte
	Status  uint32
}

// requestStream is go-libvirt's own stream call. go-libvirt generates a
// bidirectional wrapper for the console only (DomainOpenConsoleBidirectional);
// virDomainOpenChannel is as bidirectional on the wire but its wrapper only
// reads. Rather than a second RPC client, the channel call uses go-libvirt's
// stream machinery directly, with the version pinned in go.mod (a test,
// TestChannelStream, drives it against a fake daemon so a change of that
// function's shape fails there).
//
//go:linkname requestStream github.com/digitalocean/go-libvirt.(*Libvirt).requestStream
func requestStream(l *golibvirt.Libvirt, proc uint32, program uint32, payload []byte, out io.Reader, in io.Writer) (lvResponse, error)

// openArgs encodes remote_domain_open_channel_args and
// remote_domain_open_console_args (the same shape: a domain, an optional
// device name, flags) in XDR.
func openArgs(dom golibvirt.Domain, name string, flags uint32) []byte {
	var b []byte
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	str(dom.Name)
	b = append(b, dom.UUID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(dom.ID))
	if name == "" {
		b = binary.BigEndian.AppendUint32(b, 0)
	} else {
		b = binary.BigEndian.AppendUint32(b, 1)
		str(name)
	}
	return binary.BigEndian.AppendUint32(b, flags)
}

// streamConn is one open stream.
type streamConn struct {
	s    *session
	what string // for errors: "channel org.fvm.ssh.0 of fvm-web"
	// in: what libvirt sends (requestStream writes inW); out: what we send.
	inR  *io.PipeReader
	inW  *io.PipeWriter
	outR *io.PipeReader
	outW *io.PipeWriter

	done chan struct{} // the stream ended (requestStream returned)
	once sync.Once

	mu    sync.Mutex
	timer *time.Timer
}

// openStream connects to t and opens the stream proc names on dom's device
// name, returning it as a net.Conn once libvirtd accepted it.
func openStream(ctx context.Context, t *target, proc uint32, dom golibvirt.Domain, name string, flags uint32) (net.Conn, error) {
	s, err := dialSession(ctx, t)
	if err != nil {
		return nil, err
	}
	l := s.l
	dom, err = l.DomainLookupByUUID(dom.UUID) // the id this connection knows it by
	if err != nil {
		s.close()
		return nil, err
	}
	c := &streamConn{s: s, what: fmt.Sprintf("%s of %s", name, dom.Name), done: make(chan struct{})}
	c.inR, c.inW = io.Pipe()
	c.outR, c.outW = io.Pipe()
	accepted := make(chan struct{})
	go func() {
		_, err := requestStream(l, proc, remoteProgram, openArgs(dom, name, flags), &startReader{r: c.outR, started: accepted}, c.inW)
		if err == nil {
			err = io.EOF
		}
		c.inW.CloseWithError(err)
		c.outR.CloseWithError(err)
		close(c.done)
	}()
	// go-libvirt starts reading what we send once libvirtd accepted the call:
	// the first Read of out says so; a refusal ends the call first.
	select {
	case <-accepted:
		return c, nil
	case <-c.done:
		_, err := c.inR.Read(make([]byte, 1))
		s.close()
		if err == nil || err == io.EOF {
			err = errors.New("the stream ended at once")
		}
		return nil, fmt.Errorf("open %s: %w", c.what, err)
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("open %s: %w", c.what, ctx.Err())
	}
}

// startReader closes started on its first Read.
type startReader struct {
	r       io.Reader
	started chan struct{}
	once    sync.Once
}

func (s *startReader) Read(p []byte) (int, error) {
	s.once.Do(func() { close(s.started) })
	return s.r.Read(p)
}

func (c *streamConn) Read(p []byte) (int, error) { return c.inR.Read(p) }

func (c *streamConn) Write(p []byte) (int, error) {
	n, err := c.outW.Write(p)
	if errors.Is(err, io.ErrClosedPipe) {
		err = net.ErrClosed
	}
	return n, err
}

// Close ends the stream and its connection.
func (c *streamConn) Close() error {
	c.once.Do(func() {
		c.outW.Close() // go-libvirt tells libvirtd the stream is finished
		select {
		case <-c.done:
		case <-time.After(2 * time.Second):
		}
		c.s.close() // and, in any case, the connection goes
		c.inR.CloseWithError(net.ErrClosed)
		c.outR.CloseWithError(net.ErrClosed)
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return cmdAddr("libvirt") }
func (c *streamConn) RemoteAddr() net.Addr { return cmdAddr(c.what) }

// SetDeadline supports what SSH's handshake needs: past the deadline the
// stream is closed (an SSH connection is never reused after a timeout).
func (c *streamConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if !t.IsZero() {
		c.timer = time.AfterFunc(time.Until(t), func() {
			c.inR.CloseWithError(os.ErrDeadlineExceeded)
			c.outW.CloseWithError(os.ErrDeadlineExceeded)
			go c.Close()
		})
	}
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }
