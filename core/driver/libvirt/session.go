package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
)

// Streams (uploads, downloads, screenshots, channels, the console) run on RPC
// connections of their own, never on the driver's shared one, and are given
// up on after a time limit. Two reasons:
//   - go-libvirt hands a stream's data to its writer from the connection's one
//     reader goroutine, so a slow writer would stall every other call;
//   - go-libvirt ends a download at libvirtd's empty "continue" packet, and
//     when libvirtd then sends its closing "ok" packet (seen here on a log file
//     that grows while it is read), the reader goroutine blocks delivering it
//     while holding the lock every later call needs: that connection is dead
//     for good. Seen once with the serial log's copy on the shared connection,
//     it hung the whole fvm host. A session is closed at the socket instead
//     (its Disconnect could wait for that lock for ever), so only it is lost.

// session is one dedicated RPC connection.
type session struct {
	l   *golibvirt.Libvirt
	raw net.Conn // nil for a transport go-libvirt dials itself
}

// recordingDialer keeps the connection it made, so a session can be closed at
// the socket.
type recordingDialer struct {
	d    socket.Dialer
	mu   sync.Mutex
	conn net.Conn
}

func (r *recordingDialer) Dial() (net.Conn, error) {
	c, err := r.d.Dial()
	r.mu.Lock()
	r.conn = c
	r.mu.Unlock()
	return c, err
}

// dialSession opens a dedicated connection to t.
func dialSession(ctx context.Context, t *target) (*session, error) {
	if t.dialer == nil {
		l, err := connect(ctx, t)
		if err != nil {
			return nil, err
		}
		return &session{l: l}, nil
	}
	rd := &recordingDialer{d: t.dialer}
	tt := *t
	tt.dialer = rd
	l, err := connect(ctx, &tt)
	if err != nil {
		return nil, err
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return &session{l: l, raw: rd.conn}, nil
}

// close ends the session without waiting on go-libvirt.
func (s *session) close() {
	if s.raw != nil {
		s.raw.Close()
	}
	go s.l.Disconnect()
}

// do runs fn on the session, giving up after limit or when ctx ends: then the
// session is closed and the error says so.
func (s *session) do(ctx context.Context, limit time.Duration, what string, fn func(l *golibvirt.Libvirt) error) error {
	done := make(chan error, 1)
	go func() { done <- fn(s.l) }()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		s.close()
		return fmt.Errorf("%s: no end after %s: %w", what, limit, errStreamDropped)
	case <-ctx.Done():
		s.close()
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// errStreamDropped: a call on a session had no end within its limit.
var errStreamDropped = errors.New("the stream was dropped")

// oneShot runs fn on a session of its own, closed afterwards.
func oneShot(ctx context.Context, t *target, limit time.Duration, what string, fn func(l *golibvirt.Libvirt) error) error {
	s, err := dialSession(ctx, t)
	if err != nil {
		return err
	}
	defer s.close()
	return s.do(ctx, limit, what, fn)
}
