//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fvmhq/fvm/scripts/internal/echoprobe"
)

// A guest process that echoes each byte on a port, and a host client that
// keeps a TCP connection to it busy through a forwarded port: what a user's
// open connections into a VM see while fvm works on it (a snapshot must not
// cut them).

// echoServer is the guest's command line: one connection at a time, each byte
// written back at once.
func echoServer(guestPort int) string {
	return fmt.Sprintf(`setsid -f perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalPort=>%d,Listen=>5,ReuseAddr=>1) or die; while($c=$s->accept){$c->autoflush(1); while(sysread($c,$b,1)){syswrite($c,$b,1)}}' < /dev/null > /dev/null 2>&1`, guestPort)
}

type echoProbe struct {
	c     net.Conn
	stop  chan struct{}
	wg    sync.WaitGroup
	err   error
	worst time.Duration
	trips int
}

// dialEcho connects to the guest's echo server through 127.0.0.1:port once
// it answers (echoprobe.Dial).
func dialEcho(t *testing.T, port int) *echoProbe {
	t.Helper()
	c, err := echoprobe.Dial(port, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	return &echoProbe{c: c, stop: make(chan struct{})}
}

// trip sends one byte and waits for it to come back.
func (p *echoProbe) trip() (time.Duration, error) {
	t0 := time.Now()
	p.c.SetDeadline(t0.Add(30 * time.Second))
	b := []byte{'x'}
	if _, err := p.c.Write(b); err != nil {
		return 0, err
	}
	if _, err := p.c.Read(b); err != nil {
		return 0, err
	}
	if b[0] != 'x' {
		return 0, fmt.Errorf("echoed %q, want %q", b, "x")
	}
	return time.Since(t0), nil
}

// start sends a byte every 5 ms until finish.
func (p *echoProbe) start() {
	p.wg.Go(func() {
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			d, err := p.trip()
			if err != nil {
				p.err = err
				return
			}
			p.trips++
			p.worst = max(p.worst, d)
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// finish stops the probe and checks the connection still echoes; it returns
// the longest round trip seen.
func (p *echoProbe) finish() (time.Duration, error) {
	close(p.stop)
	p.wg.Wait()
	defer p.c.Close()
	if p.err != nil {
		return p.worst, fmt.Errorf("after %d round trips: %w", p.trips, p.err)
	}
	if _, err := p.trip(); err != nil {
		return p.worst, fmt.Errorf("after %d round trips, the last: %w", p.trips, err)
	}
	return p.worst, nil
}
