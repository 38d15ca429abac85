package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// ErrHostKeyMismatch means the guest offered a host key other than the one fvm
// injected through cloud-init. It is never retried.
var ErrHostKeyMismatch = errors.New("host key for vm differs from the one fvm injected: the VM was replaced or someone is intercepting; remove and recreate it")

// DefaultTimeout bounds one TCP connect and the wait for the server's first
// byte (its version line). It is short because QEMU's port forward accepts TCP
// even before the guest listens: only the server speaking says the guest is
// there.
const DefaultTimeout = 5 * time.Second

// HandshakeTimeout bounds the key exchange and authentication once the server
// has spoken. A booting TCG guest can take longer than DefaultTimeout for them
// (its sshd competes with the rest of the boot), and an attempt given up then
// only starts again from nothing beside the abandoned one, whose sshd the
// guest still runs: at boot that cost seconds per retry.
const HandshakeTimeout = time.Minute

// Target is one SSH endpoint with its pinned host key.
type Target struct {
	Addr    string     // host:port, e.g. 127.0.0.1:2222
	User    string     // login user
	Signer  ssh.Signer // client key
	HostKey string     // the guest's host key, authorized_keys format
	Timeout time.Duration
	// Poll, when set, is WaitReady's pause between attempts, with no backoff:
	// for an sshd known to answer within moments (a warm clone's).
	Poll time.Duration
}

// Client is an authenticated SSH connection to a VM.
type Client struct {
	c *ssh.Client
}

// Dial connects to t, checks the host key against t.HostKey and authenticates.
// A different host key fails with an error wrapping ErrHostKeyMismatch.
func Dial(ctx context.Context, t Target) (*Client, error) {
	cfg, err := clientConfig(t)
	if err != nil {
		return nil, err
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var d net.Dialer
	dctx, dcancel := context.WithTimeout(ctx, timeout)
	conn, err := d.DialContext(dctx, "tcp", t.Addr)
	dcancel()
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", t.Addr, err)
	}
	// The handshake has no context of its own: deadlines bound it (timeout for
	// the server's first byte, then HandshakeTimeout) and closing the
	// connection aborts it when ctx ends first.
	conn.SetDeadline(time.Now().Add(timeout))
	heard := &firstByteConn{Conn: conn}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(heard, t.Addr, cfg)
	if !stop() {
		// ctx ended: the connection is closed, whatever the handshake said.
		if sc != nil {
			sc.Close()
		}
		if err == nil || !errors.Is(err, ErrHostKeyMismatch) {
			err = fmt.Errorf("ssh handshake: %w", ctx.Err())
		}
	}
	if !heard.spoke() && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		err = fmt.Errorf("%w: %w", errUnheard, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if heard.spoke() {
			err = fmt.Errorf("ssh handshake: no key exchange and login within %s of the server's version line", HandshakeTimeout)
		} else {
			err = fmt.Errorf("ssh handshake: the server said nothing within %s (the guest is not up yet)", timeout)
		}
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh %s: %w", t.Addr, err)
	}
	conn.SetDeadline(time.Time{})
	return &Client{c: ssh.NewClient(sc, chans, reqs)}, nil
}

// errUnheard: the connection was closed before the server said a word. Behind
// QEMU's port forward that is the guest's network answering with nothing
// listening on the port yet.
var errUnheard = errors.New("closed without a word (nothing listens yet)")

// firstByteConn moves the connection's deadline to HandshakeTimeout from the
// moment the server first sends something: from then on the guest is there.
type firstByteConn struct {
	net.Conn
	heard atomic.Bool
}

func (c *firstByteConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.heard.Load() {
		c.heard.Store(true)
		c.Conn.SetDeadline(time.Now().Add(HandshakeTimeout))
	}
	return n, err
}

func (c *firstByteConn) spoke() bool { return c.heard.Load() }

func clientConfig(t Target) (*ssh.ClientConfig, error) {
	if t.Signer == nil {
		return nil, fmt.Errorf("ssh %s: no client key", t.Addr)
	}
	want, err := ParsePublicKey(t.HostKey)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: pinned host key: %w", t.Addr, err)
	}
	return &ssh.ClientConfig{
		User: t.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(t.Signer)},
		HostKeyCallback: func(_ string, _ net.Addr, got ssh.PublicKey) error {
			if string(got.Marshal()) != string(want.Marshal()) {
				return fmt.Errorf("%w (offered %s, expected %s)", ErrHostKeyMismatch,
					ssh.FingerprintSHA256(got), ssh.FingerprintSHA256(want))
			}
			return nil
		},
		// Ask only for the pinned key's type so a guest with several host keys
		// presents ours instead of failing the check with another one.
		HostKeyAlgorithms: hostKeyAlgorithms(want.Type()),
	}, nil
}

func hostKeyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// LoggedIn waits until sshd has finished the login that follows the
// handshake (PAM's session: the user's logind session and its scope). sshd
// answers a global request only from its main loop, which it enters after
// that: one keepalive round trip, where a session of its own would also cost
// a process in the guest. The first command then costs what any costs.
func (c *Client) LoggedIn(ctx context.Context) error {
	if err := keepalive(ctx, c.c); err != nil {
		return fmt.Errorf("ssh login: %w", err)
	}
	return nil
}

// keepalive sends an OpenSSH keepalive and waits for the reply (any reply:
// sshd says "failure") or ctx's end.
func keepalive(ctx context.Context, c *ssh.Client) error {
	res := make(chan error, 1)
	go func() { _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); res <- err }()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Conn exposes the underlying connection (port forwards, extra sessions).
func (c *Client) Conn() *ssh.Client { return c.c }

// SFTP opens an SFTP session over the connection (for copy commands).
func (c *Client) SFTP() (*sftp.Client, error) {
	s, err := sftp.NewClient(c.c)
	if err != nil {
		return nil, fmt.Errorf("sftp: %w", err)
	}
	return s, nil
}

// Exec runs cmd and returns its exit status. A non-zero status is not an error; a
// command killed by signal N yields 128+N, and a session that ends without any
// status (connection lost, sshd killed) yields 255, as OpenSSH's client does.
// When ctx ends the command is sent SIGKILL and the session closed.
func (c *Client) Exec(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	s, err := c.c.NewSession()
	if err != nil {
		return -1, fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	s.Stdout, s.Stderr = orDiscard(stdout), orDiscard(stderr)
	if err := feedStdin(s, stdin); err != nil {
		return -1, err
	}
	if err := s.Start(cmd); err != nil {
		return -1, fmt.Errorf("ssh exec %q: %w", cmd, err)
	}
	return wait(ctx, s)
}

// feedStdin copies r to the session's stdin in a goroutine that Wait does not wait
// for: with Session.Stdin, Wait would block until r reaches EOF, which a terminal
// never does after the remote command exits.
func feedStdin(s *ssh.Session, r io.Reader) error {
	if r == nil {
		return nil
	}
	w, err := s.StdinPipe()
	if err != nil {
		return fmt.Errorf("ssh stdin: %w", err)
	}
	go func() {
		io.Copy(w, r)
		w.Close() // EOF for the remote side
	}()
	return nil
}

func wait(ctx context.Context, s *ssh.Session) (int, error) {
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		return exitCode(err)
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL) // best effort: OpenSSH honours it, others ignore it
		s.Close()
		return -1, ctx.Err()
	}
}

func exitCode(err error) (int, error) {
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		return ee.ExitStatus(), nil // x/crypto already maps exit-signal to 128+N
	case errors.As(err, &missing):
		return 255, nil
	default:
		return -1, fmt.Errorf("ssh: %w", err)
	}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
