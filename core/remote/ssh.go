package remote

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// GreetingPrefix starts the first line `fvm system dial-stdio` writes on its
// stdout once the host answers: "fvm-dial-stdio/1 REVISION VERSION [SOCKET]".
// The client reads it before anything else, so a failure on the way (SSH, a
// missing fvm, a host that cannot start) is told apart from the API's own.
// SOCKET (path-escaped) is the host's socket on the server, which the shared
// connection then forwards (apiforward.go); clients that do not know it
// ignore it.
const GreetingPrefix = "fvm-dial-stdio/1 "

// Greeting is the line the server's side writes.
func Greeting(revision int, version, socket string) string {
	g := GreetingPrefix + strconv.Itoa(revision) + " " + version
	if socket != "" {
		g += " " + url.PathEscape(socket)
	}
	return g + "\n"
}

// maxBannerLines bounds the lines a server's login scripts may print before
// the greeting.
const maxBannerLines = 50

// DialStdioCommand is what runs on the server, through its user's shell.
const DialStdioCommand = "fvm system dial-stdio"

// SSH reaches a remote host with the system's ssh client, so the user's
// OpenSSH setup applies: ~/.ssh/config aliases, keys, ssh-agent, ProxyJump,
// known_hosts. Host keys are checked strictly and nothing is ever asked
// (BatchMode): an unknown or changed key is refused with the fix.
type SSH struct {
	Host Host
	// ControlDir is where the shared connection's socket goes (OpenSSH's
	// ControlMaster, kept ControlPersist after the last use): every command
	// after the first costs a session, not a handshake. "" turns sharing off.
	ControlDir string
	Persist    time.Duration // default 10 minutes
	Program    string        // default "ssh"
	// Revision and Version are this client's, compared with the greeting.
	Revision int
	Version  string
	// Greet bounds the wait for the greeting, which includes starting the
	// remote host on demand (default 60 s).
	Greet time.Duration
}

// Options are the ssh options every invocation gets.
func (s *SSH) Options() []string {
	o := []string{
		"-o", "BatchMode=yes", // never prompt: a passphrase comes from ssh-agent
		"-o", "StrictHostKeyChecking=yes", // an unknown or changed server key is refused
		"-o", "ConnectTimeout=15",
		"-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3",
		// The API forward's socket replaces one a dead master left behind.
		"-o", "StreamLocalBindUnlink=yes",
	}
	if s.ControlDir != "" {
		persist := s.Persist
		if persist <= 0 {
			persist = 10 * time.Minute
		}
		o = append(o, "-o", "ControlMaster=auto",
			"-o", "ControlPath="+strings.ReplaceAll(s.ControlDir, "%", "%%")+"/fvm-%C",
			"-o", "ControlPersist="+strconv.Itoa(int(persist.Seconds())))
	}
	if s.Host.Port != 0 {
		o = append(o, "-p", strconv.Itoa(s.Host.Port))
	}
	if s.Host.User != "" {
		o = append(o, "-l", s.Host.User)
	}
	return o
}

func (s *SSH) program() string {
	if s.Program != "" {
		return s.Program
	}
	return "ssh"
}

// Command runs argv on the server (each word quoted for its shell); stdio is
// the caller's to set. With tty, ssh gives the command a terminal of its own
// and this one's keys (Ctrl-C) go to it: stdin must then be this terminal.
func (s *SSH) Command(ctx context.Context, tty bool, argv ...string) *exec.Cmd {
	t := "-T"
	if tty {
		t = "-t"
	}
	args := append(s.Options(), t, "--", s.Host.Server, ShellQuote(argv))
	return exec.CommandContext(ctx, s.program(), args...)
}

// Stop ends the shared connection, if one is up.
func (s *SSH) Stop() error {
	if s.ControlDir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	args := append(s.Options(), "-O", "exit", "--", s.Host.Server)
	return exec.CommandContext(ctx, s.program(), args...).Run()
}

// Dial opens one connection to the remote host's API: an ssh session running
// `fvm system dial-stdio`, whose greeting it reads before returning. When the
// server refuses one more session on the shared connection (sshd's
// MaxSessions, 10 by default), the session gets a connection of its own.
//
// With a shared connection, a connection goes through the master's forward
// to the host's socket when there is one (apiforward.go): no session at all.
func (s *SSH) Dial(ctx context.Context) (net.Conn, error) {
	if s.ControlDir != "" {
		if c, err := s.dialForward(ctx); err == nil {
			return c, nil
		}
	}
	c, err := s.dial(ctx, s.Options())
	var re *refusedSession
	if errors.As(err, &re) && s.ControlDir != "" {
		own := *s
		own.ControlDir = ""
		return s.dial(ctx, own.Options())
	}
	if err == nil && s.ControlDir != "" {
		s.ensureForward(c.(*cmdConn).RemoteSocket)
	}
	return c, err
}

// refusedSession is the shared connection's server refusing another session.
type refusedSession struct{ error }

func (s *SSH) dial(ctx context.Context, opts []string) (net.Conn, error) {
	args := append(opts, "-T", "--", s.Host.Server, DialStdioCommand)
	cmd := exec.Command(s.program(), args...)
	cmd.SysProcAttr = sysProcAttr()
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	// Files, not writers: exec hands them over as they are, so no copying
	// goroutine of ours waits on a pipe that a backgrounded ControlMaster
	// might hold open.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		if errors.Is(err, exec.ErrNotFound) {
			return nil, &Error{Server: s.Host.Name(), Msg: "no ssh client here (" + s.program() + " is not in PATH): install OpenSSH's client"}
		}
		return nil, fmt.Errorf("ssh to %s: %w", s.Host.Name(), err)
	}
	c := &cmdConn{host: s.Host, cmd: cmd, in: inW, outFile: outR, out: bufio.NewReader(outR), exited: make(chan struct{})}
	c.stderr.start(errR)
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()

	greet := s.Greet
	if greet <= 0 {
		greet = 60 * time.Second
	}
	type line struct {
		s   string
		err error
	}
	got := make(chan line, 1)
	go func() {
		// Login scripts that print (a banner, a motd) come first: their
		// lines are skipped, as long as the greeting follows soon.
		var skipped string
		for i := 0; i < maxBannerLines; i++ {
			l, err := c.out.ReadString('\n')
			if err != nil || strings.HasPrefix(l, GreetingPrefix) {
				if err != nil && skipped != "" {
					l = skipped
				}
				got <- line{l, err}
				return
			}
			if skipped == "" {
				skipped = l
			}
		}
		got <- line{skipped, errors.New("no greeting")}
	}()
	timer := time.NewTimer(greet)
	defer timer.Stop()
	var l line
	select {
	case l = <-got:
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("connecting to %s: %w", s.Host.Name(), ctx.Err())
	case <-timer.C:
		c.Close()
		return nil, &Error{Server: s.Host.Name(), Msg: fmt.Sprintf("%s did not answer within %s (ssh: %s)", s.Host.Name(), greet, c.stderr.last())}
	}
	if l.err != nil || !strings.HasPrefix(l.s, GreetingPrefix) {
		c.Close()
		<-c.exited
		c.stderr.wait(time.Second)
		stderr := c.stderr.String()
		err := classify(s.Host, exitStatus(c.waitErr), stderr, l.s)
		if strings.Contains(stderr, "Session open refused") || strings.Contains(stderr, "administratively prohibited") {
			return nil, &refusedSession{err}
		}
		// A server that logged us in but has no fvm to serve keeps no shared
		// connection waiting for ControlPersist (no session of ours uses it).
		if exitStatus(c.waitErr) == 127 {
			s.Stop()
		}
		return nil, err
	}
	rev, version, socket := parseGreeting(l.s)
	if s.Revision != 0 && rev != s.Revision {
		c.Close()
		return nil, revisionError(s.Host, rev, version, s.Revision, s.Version)
	}
	c.RemoteVersion, c.RemoteRevision, c.RemoteSocket = version, rev, socket
	return c, nil
}

func parseGreeting(l string) (rev int, version, socket string) {
	f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), GreetingPrefix))
	if len(f) == 0 {
		return 0, "", ""
	}
	rev, _ = strconv.Atoi(f[0])
	if len(f) > 1 {
		version = f[1]
	}
	if len(f) > 2 {
		socket, _ = url.PathUnescape(f[2])
	}
	return rev, version, socket
}

// exitStatus is ssh's exit status, -1 when it was killed or did not say.
func exitStatus(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// cmdConn is an ssh process as a net.Conn: writes go to its stdin, reads come
// from its stdout.
type cmdConn struct {
	host    Host
	cmd     *exec.Cmd
	in      *os.File
	outFile *os.File
	out     *bufio.Reader
	stderr  tailBuffer

	exited  chan struct{}
	waitErr error // set before exited is closed

	closeOnce sync.Once

	RemoteVersion  string
	RemoteRevision int
	RemoteSocket   string // the host's socket on the server, "" when not said
}

func (c *cmdConn) Read(b []byte) (int, error) {
	n, err := c.out.Read(b)
	if err == io.EOF {
		// The end of the stream is the server's close, or ssh's death: wait
		// briefly for ssh's status to tell which.
		select {
		case <-c.exited:
			if st := exitStatus(c.waitErr); st != 0 {
				c.stderr.wait(200 * time.Millisecond)
				return n, &LostError{Server: c.host.Name(), How: lostHow(c.waitErr, c.stderr.last())}
			}
		case <-time.After(500 * time.Millisecond):
		}
	}
	return n, err
}

func (c *cmdConn) Write(b []byte) (int, error) {
	n, err := c.in.Write(b)
	if err != nil {
		select {
		case <-c.exited:
			return n, &LostError{Server: c.host.Name(), How: lostHow(c.waitErr, c.stderr.last())}
		default:
		}
	}
	return n, err
}

// Close ends the session: the end of its stdin tells the server's side to
// stop; ssh is then asked to go, and killed if it lingers.
func (c *cmdConn) Close() error {
	c.closeOnce.Do(func() {
		c.in.Close()
		go func() {
			select {
			case <-c.exited:
			case <-time.After(2 * time.Second):
				c.cmd.Process.Signal(terminate)
				select {
				case <-c.exited:
				case <-time.After(3 * time.Second):
					c.cmd.Process.Kill()
				}
			}
			c.outFile.Close()
		}()
	})
	return nil
}

// CloseWrite sends EOF to the server's side and keeps reading.
func (c *cmdConn) CloseWrite() error { return c.in.Close() }

func (c *cmdConn) LocalAddr() net.Addr                { return sshAddr("fvm client") }
func (c *cmdConn) RemoteAddr() net.Addr               { return sshAddr(c.host.String()) }
func (c *cmdConn) SetDeadline(t time.Time) error      { return nil }
func (c *cmdConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *cmdConn) SetWriteDeadline(t time.Time) error { return nil }

type sshAddr string

func (a sshAddr) Network() string { return "ssh" }
func (a sshAddr) String() string  { return string(a) }

func lostHow(waitErr error, stderr string) string {
	how := "ssh exited"
	if waitErr != nil {
		how = "ssh: " + waitErr.Error()
	}
	if stderr != "" {
		how += ": " + stderr
	}
	return how
}

// tailBuffer keeps the last bytes ssh wrote to stderr.
type tailBuffer struct {
	mu   sync.Mutex
	b    []byte
	done chan struct{}
}

func (t *tailBuffer) start(r *os.File) {
	t.done = make(chan struct{})
	go func() {
		defer close(t.done)
		defer r.Close()
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			t.mu.Lock()
			t.b = append(t.b, buf[:n]...)
			if len(t.b) > 16<<10 {
				t.b = t.b[len(t.b)-16<<10:]
			}
			t.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
}

// wait waits up to d for the end of stderr (a ControlMaster ssh started in
// the background may keep it open for ever).
func (t *tailBuffer) wait(d time.Duration) {
	select {
	case <-t.done:
	case <-time.After(d):
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// last is the last non-empty line.
func (t *tailBuffer) last() string {
	lines := strings.Split(strings.TrimSpace(t.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// ShellQuote joins argv into one line for a POSIX shell, quoting every word
// that needs it (ssh hands the server's shell a single string).
func ShellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, s := range argv {
		if s != "" && strings.IndexFunc(s, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			q[i] = s
			continue
		}
		q[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// ControlDir returns a directory for the shared connections' sockets: dir
// when its paths fit a Unix socket's ~104 bytes (OpenSSH adds a 17-byte
// suffix while it sets one up), else a private one under the system's temp dir.
func ControlDir(dir string) (string, error) {
	const room = 100 - len("/fvm-") - 40 - 17 // %C is 40 hex digits
	if len(dir) > room {
		dir = filepath.Join(os.TempDir(), "fvm-ssh-"+strconv.Itoa(os.Getuid()))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return "", fmt.Errorf("%s belongs to another user: remove it, or set FVM_HOME to a short path", dir)
	}
	if !st.IsDir() || st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", fmt.Errorf("%s is not a private directory: %w", dir, err)
		}
	}
	return dir, nil
}
