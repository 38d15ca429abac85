// Package sshdtest runs Debian's OpenSSH server for tests of remote hosts: its
// own sshd on 127.0.0.1 ports, with its own host key, config and authorized
// key, for a login account whose sessions find a given fvm on their PATH. It
// needs root (sshd's privilege separation) and openssh-server
// (scripts/setup.sh installs it). Nothing of it outlives Stop but the
// account, which is created when absent.
package sshdtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sshd is the path of Debian's OpenSSH server.
const Sshd = "/usr/sbin/sshd"

// Options configure a Server.
type Options struct {
	// Dir holds the server's files; it must be readable by the account (sshd
	// reads the authorized key as that user).
	Dir string
	// Users may log in, with AuthorizedKey (an authorized_keys line).
	Users         []string
	AuthorizedKey string
	// Env is set in the sessions of the main port (NAME=VALUE), e.g. a PATH
	// with fvm on it and FVM_HOME.
	Env []string
	// BarePATH is the PATH of the sessions of the second port: no fvm on it.
	BarePATH string
}

// Server is a running sshd.
type Server struct {
	Port     int // the sessions get Env
	BarePort int // the sessions get BarePATH only
	HostKey  string
	Dir      string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Available says why a test cannot run an sshd here, or nil.
func Available() error {
	if os.Getuid() != 0 {
		return errors.New("sshd needs root here (privilege separation)")
	}
	if _, err := os.Stat(Sshd); err != nil {
		return fmt.Errorf("%s missing: run scripts/setup.sh (openssh-server)", Sshd)
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		return errors.New("ssh-keygen missing: install openssh-client")
	}
	return nil
}

// EnsureUser creates an unprivileged login account when absent and returns
// it. Its password is "*": no password logs in, yet the account is not locked
// ("!"), which sshd without PAM refuses even for keys.
func EnsureUser(name string) (*user.User, error) {
	if u, err := user.Lookup(name); err == nil {
		if locked(name) {
			if out, err := exec.Command("usermod", "-p", "*", name).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("usermod %s: %v: %s", name, err, out)
			}
		}
		return u, nil
	}
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/bash", "-p", "*", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("useradd %s: %v: %s", name, err, out)
	}
	return user.Lookup(name)
}

func locked(name string) bool {
	b, _ := os.ReadFile("/etc/shadow")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Split(l, ":"); len(f) > 1 && f[0] == name {
			return strings.HasPrefix(f[1], "!")
		}
	}
	return false
}

// Chown gives path (and what is below it) to the account.
func Chown(u *user.User, path string) error {
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// KeyPair makes an ed25519 key at path (and path.pub) and returns the public line.
func KeyPair(path string) (string, error) {
	os.Remove(path)
	os.Remove(path + ".pub")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fvm-test", "-f", path).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	b, err := os.ReadFile(path + ".pub")
	return strings.TrimSpace(string(b)), err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start runs sshd -D on two free 127.0.0.1 ports and waits until it answers.
func Start(o Options) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	// Debian's sshd refuses to start without its privilege separation dir,
	// which its service unit makes.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	s := &Server{Dir: o.Dir, done: make(chan struct{})}
	hostKey := filepath.Join(o.Dir, "ssh_host_ed25519_key")
	pub, err := KeyPair(hostKey)
	if err != nil {
		return nil, err
	}
	s.HostKey = pub
	auth := filepath.Join(o.Dir, "authorized_keys")
	if err := os.WriteFile(auth, []byte(o.AuthorizedKey+"\n"), 0o644); err != nil {
		return nil, err
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	if s.BarePort, err = freePort(); err != nil {
		return nil, err
	}
	quoteEnv := func(env []string) string {
		q := make([]string, len(env))
		for i, e := range env {
			q[i] = strconv.Quote(e)
		}
		return strings.Join(q, " ")
	}
	// SetEnv takes its first value only: each port sets it in a Match of its own.
	cfg := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers %s
PrintMotd no
LogLevel VERBOSE
Match LocalPort %d
	SetEnv %s
Match LocalPort %d
	SetEnv PATH=%s
`, s.Port, s.BarePort, hostKey, filepath.Join(o.Dir, "sshd.pid"), auth, strings.Join(o.Users, " "),
		s.Port, quoteEnv(o.Env), s.BarePort, o.BarePATH)
	conf := filepath.Join(o.Dir, "sshd_config")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command(Sshd, "-t", "-f", conf).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshd -t: %v: %s", err, out)
	}
	log, err := os.Create(filepath.Join(o.Dir, "sshd.log"))
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(Sshd, "-D", "-e", "-f", conf)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = procAttr()
	if err := s.cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	go func() { s.cmd.Wait(); log.Close(); close(s.done) }()
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.Port), time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("sshd exited: %s", s.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.Stop()
	return nil, fmt.Errorf("sshd did not listen on 127.0.0.1:%d: %s", s.Port, s.Log())
}

// Log is what sshd logged.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sshd.log"))
	return string(b)
}

// KnownHosts is the known_hosts line of the server on a port.
func (s *Server) KnownHosts(port int) string {
	f := strings.Fields(s.HostKey)
	return fmt.Sprintf("[127.0.0.1]:%d %s %s", port, f[0], f[1])
}

// Stop ends sshd and the sessions it serves (its process group).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// ClientHome makes a HOME for a client of the server: ~/.ssh with the key
// pair at its default name and known_hosts holding the server's key for its
// ports; it returns the public key line.
func ClientHome(home string) (string, error) {
	dir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return KeyPair(filepath.Join(dir, "id_ed25519"))
}

// TrustIn writes the server's key into the client home's known_hosts.
func (s *Server) TrustIn(home string) error {
	var b bytes.Buffer
	fmt.Fprintln(&b, s.KnownHosts(s.Port))
	fmt.Fprintln(&b, s.KnownHosts(s.BarePort))
	return os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), b.Bytes(), 0o600)
}
