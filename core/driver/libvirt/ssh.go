package libvirt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// qemu+ssh: the user's own OpenSSH client carries the RPC, so their ssh config,
// agent, known_hosts and connection sharing apply, as they do for `virsh -c
// qemu+ssh://...`. On the far side libvirt's virt-ssh-helper (libvirt 8.5+: the
// "native" proxy) connects stdin/stdout to the daemon the URI names, starting a
// session daemon if needed; ?proxy=netcat uses `nc -U SOCKET` as older libvirt did.
type sshDialer struct {
	command string   // ssh, or ?command=
	args    []string // options and destination, before the remote command
	remote  string   // the remote command that reaches the daemon
}

func newSSHDialer(u *url.URL) (*sshDialer, error) {
	if u.Hostname() == "" {
		return nil, errors.New("qemu+ssh needs a host: qemu+ssh://user@server/system")
	}
	q := u.Query()
	d := &sshDialer{command: "ssh"}
	if c := q.Get("command"); c != "" {
		d.command = c
	}
	// -T: no terminal; -e none: no escape character in a binary stream;
	// BatchMode: never prompt (fvm's host has no terminal): a key or agent is needed.
	d.args = []string{"-T", "-e", "none", "-o", "BatchMode=yes"}
	if p := u.Port(); p != "" {
		d.args = append(d.args, "-p", p)
	}
	if k := q.Get("keyfile"); k != "" {
		d.args = append(d.args, "-i", k)
	}
	if q.Get("no_verify") == "1" {
		d.args = append(d.args, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")
	}
	dest := u.Hostname()
	if u.User != nil && u.User.Username() != "" {
		dest = u.User.Username() + "@" + dest
	}
	d.args = append(d.args, "--", dest)
	name := (&url.URL{Scheme: "qemu", Path: u.Path}).String()
	switch q.Get("proxy") {
	case "", "auto", "native":
		d.remote = "virt-ssh-helper " + shellQuote(name)
	case "netcat":
		sock := q.Get("socket")
		if sock == "" {
			if u.Path == "/session" {
				return nil, errors.New("?proxy=netcat with /session needs ?socket=PATH (the remote user's session socket)")
			}
			sock = "/run/libvirt/libvirt-sock"
		}
		d.remote = "nc -U " + shellQuote(sock)
	default:
		return nil, fmt.Errorf("proxy %q: use native (virt-ssh-helper) or netcat", q.Get("proxy"))
	}
	return d, nil
}

// Dial runs ssh with the daemon's proxy as the remote command.
func (d *sshDialer) Dial() (net.Conn, error) { return d.run(d.remote) }

// Stream runs ssh with another remote command (e.g. `-W` style forwards are
// given as extra args by callers that need them).
func (d *sshDialer) run(remote string, extra ...string) (net.Conn, error) {
	args := append(append([]string{}, extra...), d.args...)
	if remote != "" {
		args = append(args, remote)
	}
	cmd := exec.Command(d.command, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// A pipe of our own, not StdoutPipe: cmd.Wait closes StdoutPipe's read
	// end while Read may still be in it ("file already closed").
	stdout, pw, err := os.Pipe()
	if err != nil {
		stdin.Close()
		return nil, err
	}
	cmd.Stdout = pw
	c := &cmdConn{cmd: cmd, w: stdin, r: stdout, done: make(chan struct{})}
	cmd.Stderr = &c.stderr
	err = cmd.Start()
	pw.Close() // the child holds its copy: EOF once it ends
	if err != nil {
		stdout.Close()
		return nil, fmt.Errorf("run %s: %w", d.command, err)
	}
	go func() { c.waitErr = cmd.Wait(); close(c.done) }()
	return c, nil
}

// forward opens a stream to a Unix socket on the far host through OpenSSH's
// streamlocal forwarding: `ssh -L LOCAL:REMOTE` to a private socket here,
// connected once and then unlinked; the ssh lives as long as the connection.
// (`ssh -W PATH` would need no local socket, but OpenSSH 9.2, Debian 12's,
// opens no channel for a path: the stream ended at once.) Its remote command
// reads its stdin, a pipe this process holds: if the host dies without
// closing the connection, the pipe's end ends the ssh (as `-N` would not).
func (d *sshDialer) forward(path string) (net.Conn, error) {
	if strings.ContainsAny(path, ": \t\n") {
		return nil, fmt.Errorf("socket %q on the libvirt host: ssh -L cannot name a path with a colon or a space", path)
	}
	dir, err := os.MkdirTemp("", "fvm-lvfw-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // once connected, the socket's name is not needed
	local := filepath.Join(dir, "s")
	args := append([]string{"-o", "ExitOnForwardFailure=yes", "-L", local + ":" + path}, d.args...)
	cmd := exec.Command(d.command, append(args, "exec cat > /dev/null")...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", d.command, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	fail := func(err error) (net.Conn, error) {
		stdin.Close()
		cmd.Process.Kill()
		<-done
		if msg := lastLine(stderr.String()); msg != "" {
			err = fmt.Errorf("%w (ssh: %s)", err, msg)
		}
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", local); err == nil {
			return &forwardConn{Conn: c, cmd: cmd, stdin: stdin, done: done}, nil
		}
		select {
		case <-done:
			return fail(fmt.Errorf("ssh ended before it forwarded %s", path))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("ssh did not forward %s within 30 s", path))
		}
	}
}

// forwardConn is a connection through an `ssh -L` of its own, which ends with it.
type forwardConn struct {
	net.Conn
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	once  sync.Once
}

func (c *forwardConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.stdin.Close()
		c.cmd.Process.Kill()
		<-c.done
	})
	return err
}

// cmdConn is a child's stdin/stdout as a net.Conn; closing it ends the child.
type cmdConn struct {
	cmd     *exec.Cmd
	w       io.WriteCloser
	r       io.ReadCloser
	stderr  lockedBuffer
	done    chan struct{}
	waitErr error
	once    sync.Once
}

func (c *cmdConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF && n == 0 {
		select { // the child ended: say why, once its stderr is complete
		case <-c.done:
		case <-time.After(2 * time.Second):
		}
		if msg := lastLine(c.stderr.String()); msg != "" {
			return 0, fmt.Errorf("%s: %s", c.cmd.Path, msg)
		}
	}
	return n, err
}

func (c *cmdConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func (c *cmdConn) Close() error {
	c.once.Do(func() {
		c.w.Close()
		select { // ssh ends by itself once its stdin closes; otherwise end it
		case <-c.done:
		case <-time.After(2 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
		c.r.Close()
	})
	return nil
}

func (c *cmdConn) LocalAddr() net.Addr                { return cmdAddr("ssh") }
func (c *cmdConn) RemoteAddr() net.Addr               { return cmdAddr(strings.Join(c.cmd.Args, " ")) }
func (c *cmdConn) SetDeadline(t time.Time) error      { return nil }
func (c *cmdConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *cmdConn) SetWriteDeadline(t time.Time) error { return nil }

type cmdAddr string

func (a cmdAddr) Network() string { return "cmd" }
func (a cmdAddr) String() string  { return string(a) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 { // a chatty child cannot grow it without bound
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// shellQuote quotes s as one word for the remote user's shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
