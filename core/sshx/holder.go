package sshx

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// HolderOptions tune a Holder; zero values pick the defaults.
type HolderOptions struct {
	// Keepalive is how often an idle connection is probed (default 10s), and
	// KeepaliveTimeout how long a probe may take before the connection counts as
	// lost (default 30s: a TCG guest under load answers slowly).
	Keepalive        time.Duration
	KeepaliveTimeout time.Duration
	// MaxConns bounds the connections held at once: one, plus extras opened
	// when the guest's sshd refuses more sessions on the others (default 4).
	MaxConns int
	// OnReady is called each time the held connection is (re)established.
	OnReady func(reconnected bool)
	// OnFatal is called once when holding cannot go on (the guest offered
	// another host key): the Holder then refuses every request with err.
	OnFatal func(err error)
	// Initial, when set, is a connection to the target made and checked
	// already: it is held first, sparing a handshake (a warm clone's check).
	Initial *Client
	// InstallerFirst: the VM may first run an installer with an SSH server of
	// its own (an ISO install), whose other host key is waited out, never
	// accepted, instead of being fatal.
	InstallerFirst bool
	// Session: a new connection counts as ready once a command ran on it
	// (`true`). sshd finishes the login (PAM: the user's logind session, on
	// a cold boot the user's systemd manager) after the handshake, and the
	// first session waits for it: so that the first command costs what any
	// command costs, ready waits instead. Initial counts as checked already
	// (a warm clone's waited for its login: Client.LoggedIn). A resumed
	// guest's connection is ready at the handshake: resume → SSH stays short,
	// the first command after it finishes the login.
	Session bool
	// Gate, when set, runs before the first connection attempt (not before
	// reconnections) and returns when attempts are worth making. A booting
	// guest behind QEMU's port forward keeps every attempt made before its
	// network is up pending, and starts an sshd for each once it listens.
	// It returns true when the guest is known to be up (its agent answered):
	// the first attempts then wait for the server's first word (Target.Up).
	Gate func(ctx context.Context) bool
	// OnAttempt, when set, sees each failed connection attempt's error.
	OnAttempt func(err error)
}

// Holder keeps one pinned SSH connection to a VM open for as long as the VM
// runs, so that a command costs a session, not a handshake: it connects when
// SSH first answers, probes the connection, reconnects when it is lost (with
// the same pinned host key, never another), and opens more connections only
// when the guest's sshd refuses more sessions on those it has.
type Holder struct {
	t    Target
	o    HolderOptions
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{} // closed when the connecting loop has ended

	mu       sync.Mutex
	conns    []*Client     // conns[0] is the primary; nil until connected
	ready    chan struct{} // closed while the primary is up; replaced when it is lost
	fatal    error
	connects int // times the primary connected
}

// Hold starts holding a connection to t in the background.
func Hold(t Target, o HolderOptions) *Holder {
	if o.Keepalive <= 0 {
		o.Keepalive = 10 * time.Second
	}
	if o.KeepaliveTimeout <= 0 {
		o.KeepaliveTimeout = 30 * time.Second
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	ctx, stop := context.WithCancel(context.Background())
	h := &Holder{t: t, o: o, ctx: ctx, stop: stop, done: make(chan struct{}), ready: make(chan struct{})}
	go h.run()
	return h
}

// ErrHolderClosed means the VM stopped (or the host is going away).
var ErrHolderClosed = errors.New("the VM's SSH connection is closed: the VM stopped")

func (h *Holder) run() {
	defer close(h.done)
	first := h.o.Initial
	t := h.t
	if first == nil && h.o.Gate != nil && h.o.Gate(h.ctx) {
		t = t.Up()
	}
	for {
		var c *Client
		var err error
		if first != nil {
			c, first = first, nil
		} else {
			c, err = WaitReady(h.ctx, t, h.o.OnAttempt)
			t = h.t // reconnections: the guest may be gone
		}
		if err != nil && errors.Is(err, ErrHostKeyMismatch) && h.o.InstallerFirst {
			select {
			case <-h.ctx.Done():
				return
			case <-time.After(2 * time.Second):
				continue
			}
		}
		if err == nil && c != h.o.Initial && h.o.Session && !h.settle(c) {
			continue // lost before its first session: connect again
		}
		if err != nil {
			if errors.Is(err, ErrHostKeyMismatch) {
				h.mu.Lock()
				h.fatal = err
				close(h.ready) // wake the waiters: they see fatal
				h.mu.Unlock()
				if h.o.OnFatal != nil {
					h.o.OnFatal(err)
				}
			}
			return
		}
		h.mu.Lock()
		h.conns = append([]*Client{c}, h.conns...)
		h.connects++
		reconnected := h.connects > 1
		h.mu.Unlock()
		if h.o.OnReady != nil { // before waiters wake: they see what it did
			h.o.OnReady(reconnected)
		}
		h.mu.Lock()
		close(h.ready)
		h.mu.Unlock()
		h.keep(c)
		h.drop(c)
		if h.ctx.Err() != nil {
			return
		}
	}
}

// settle runs one command on a new connection and says whether the
// connection stands (else it is closed). The command's own status, or a guest
// that runs no commands, does not matter: only a lost connection does.
func (h *Holder) settle(c *Client) bool {
	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Minute)
	defer cancel()
	if _, err := c.Exec(ctx, "true", nil, nil, nil); err != nil && (h.ctx.Err() != nil || !probe(c.Conn(), h.o.KeepaliveTimeout)) {
		c.Close()
		return false
	}
	return true
}

// keep returns when c is lost (closed by the peer, or a probe failed) or the Holder closes.
func (h *Holder) keep(c *Client) {
	closed := make(chan struct{})
	go func() { c.Conn().Wait(); close(closed) }()
	tick := time.NewTicker(h.o.Keepalive)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-closed:
			return
		case <-tick.C:
			if !probe(c.Conn(), h.o.KeepaliveTimeout) {
				return
			}
		}
	}
}

// probe sends an OpenSSH keepalive; any reply within timeout means alive.
func probe(c *ssh.Client, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return keepalive(ctx, c) == nil
}

// drop forgets c (the primary) and closes it; the next request waits for the reconnection.
func (h *Holder) drop(c *Client) {
	h.mu.Lock()
	for i, x := range h.conns {
		if x == c {
			h.conns = append(h.conns[:i:i], h.conns[i+1:]...)
			break
		}
	}
	if h.fatal == nil {
		select {
		case <-h.ready:
			h.ready = make(chan struct{})
		default:
		}
	}
	h.mu.Unlock()
	c.Close()
}

// Ready waits until the connection is up, the Holder failed or closed, or ctx ends.
func (h *Holder) Ready(ctx context.Context) error {
	for {
		h.mu.Lock()
		ready, fatal := h.ready, h.fatal
		h.mu.Unlock()
		if fatal != nil {
			return fatal
		}
		select {
		case <-ready:
			h.mu.Lock()
			up, fatal := len(h.conns) > 0, h.fatal
			h.mu.Unlock()
			if fatal != nil {
				return fatal
			}
			if up {
				return nil
			}
		case <-h.done:
			if err := h.fatalErr(); err != nil {
				return err
			}
			return ErrHolderClosed
		case <-ctx.Done():
			return fmt.Errorf("ssh %s not ready: %w", h.t.Addr, ctx.Err())
		}
	}
}

func (h *Holder) fatalErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fatal
}

// Done is closed when holding has ended (Close, or a fatal host key).
func (h *Holder) Done() <-chan struct{} { return h.done }

// Connects is how many times the connection was established (1: never lost).
func (h *Holder) Connects() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.connects
}

// Conns is how many connections are held now.
func (h *Holder) Conns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Start runs opts in a new session, once the connection is up. When the
// guest's sshd refuses another session on every held connection (its
// MaxSessions), it opens one more connection rather than fail.
func (h *Holder) Start(ctx context.Context, opts ProcessOptions) (*Process, error) {
	for attempt := 0; attempt < 3; attempt++ {
		if err := h.Ready(ctx); err != nil {
			return nil, err
		}
		h.mu.Lock()
		conns := append([]*Client(nil), h.conns...)
		h.mu.Unlock()
		full := 0
		for _, c := range conns {
			p, err := StartProcess(c.Conn(), opts)
			switch sessionFailure(err) {
			case started:
				return p, nil
			case refused:
				full++
			case lost: // keep notices and reconnects; try the others meanwhile
			default:
				return nil, err // the session opened but the command did not start
			}
		}
		if len(conns) > 0 && full == len(conns) {
			c, err := h.extra(ctx)
			if err != nil {
				return nil, err
			}
			p, err := StartProcess(c.Conn(), opts)
			switch sessionFailure(err) {
			case started:
				return p, nil
			case refused, lost:
				continue
			default:
				return nil, err
			}
		}
		select { // a lost connection is being replaced
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("ssh %s: no session could be opened: the connection keeps failing", h.t.Addr)
}

type failure int

const (
	started failure = iota
	refused         // the server refused a session channel (MaxSessions)
	lost            // the connection is gone
	failed          // the session opened, the command did not start
)

func sessionFailure(err error) failure {
	var oce *ssh.OpenChannelError
	var se *StartError
	switch {
	case err == nil:
		return started
	case errors.As(err, &oce):
		return refused
	case errors.As(err, &se):
		return failed
	}
	return lost // x/crypto's words for a dead connection vary ("EOF", "unexpected packet")
}

// extra opens one more connection for sessions the others cannot take.
func (h *Holder) extra(ctx context.Context) (*Client, error) {
	h.mu.Lock()
	n := len(h.conns)
	h.mu.Unlock()
	if n >= h.o.MaxConns {
		return nil, fmt.Errorf("ssh %s: the guest refuses more sessions on all %d connections: try again when some commands ended", h.t.Addr, n)
	}
	c, err := Dial(ctx, h.t)
	if err != nil {
		if errors.Is(err, ErrHostKeyMismatch) && h.o.OnFatal != nil {
			h.o.OnFatal(err)
		}
		return nil, err
	}
	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		c.Close()
		return nil, ErrHolderClosed
	}
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	go func() { // an extra is forgotten when it drops; the primary's loop reconnects only itself
		c.Conn().Wait()
		h.mu.Lock()
		for i, x := range h.conns {
			if x == c && i > 0 {
				h.conns = append(h.conns[:i:i], h.conns[i+1:]...)
				break
			}
		}
		h.mu.Unlock()
	}()
	return c, nil
}

// Client returns the primary connection once it is up (for SFTP and the like).
func (h *Holder) Client(ctx context.Context) (*Client, error) {
	if err := h.Ready(ctx); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.conns) == 0 {
		return nil, ErrHolderClosed
	}
	return h.conns[0], nil
}

// Close ends holding and closes every connection; running sessions end with them.
func (h *Holder) Close() {
	h.stop()
	<-h.done
	h.mu.Lock()
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
