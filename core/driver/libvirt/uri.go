package libvirt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
)

// Connection URIs. fvm takes libvirt's own URI syntax
// (https://libvirt.org/uri.html) for the transports a pure-Go client can speak:
//
//	qemu:///system, qemu:///session        the local daemon's Unix socket
//	qemu+unix:///system?socket=PATH         a socket of your choice
//	qemu+ssh://[user@]host[:port]/system    the user's own OpenSSH (ssh config,
//	                                        agent, known_hosts, ControlMaster),
//	                                        running virt-ssh-helper (libvirt 8.5+)
//	                                        on the far side, or `nc -U` with
//	                                        ?proxy=netcat
//	qemu+tcp://, qemu+tls://, qemu+libssh:// go-libvirt's own dialers
//
// No virsh and no libvirt client library: the RPC protocol is go-libvirt's.

// Default URIs: the system daemon for root, the user's session daemon otherwise,
// as libvirt's own clients choose.
const (
	SystemURI  = "qemu:///system"
	SessionURI = "qemu:///session"
)

// DefaultURI is the URI used when neither libvirt.uri nor FVM_LIBVIRT_URI says one.
func DefaultURI() string {
	if os.Geteuid() == 0 {
		return SystemURI
	}
	return SessionURI
}

// dialTimeout bounds connecting to a daemon: an unreachable URI fails in one
// clear line rather than hanging a `fvm run`.
const dialTimeout = 15 * time.Second

// target is a parsed connection URI: how to reach the daemon (dial) and what
// to ask it for once connected (remote, e.g. qemu:///system).
type target struct {
	uri    string // as the user wrote it, for messages
	remote golibvirt.ConnectURI
	dialer socket.Dialer
	own    *url.URL // instead of dialer: a transport go-libvirt dials itself (tcp, tls, libssh)
	// local: the daemon runs on this machine (its files are this machine's).
	local bool
	// session: a per-user daemon (qemu:///session); ownSession: this user's,
	// at its usual socket.
	session, ownSession bool
	// ssh, for qemu+ssh URIs: how the daemon was reached, which other streams
	// (the VNC socket) take too.
	ssh *sshDialer
}

// parseURI checks a URI and picks its dialer. Errors name the URI and the fix.
func parseURI(raw string) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("libvirt URI %q is not a URI: use e.g. qemu:///system or qemu+ssh://user@server/system", raw)
	}
	scheme, transport, _ := strings.Cut(u.Scheme, "+")
	if scheme != "qemu" {
		return nil, fmt.Errorf("libvirt URI %q: fvm drives QEMU domains only: use a qemu:// URI", raw)
	}
	if u.Path != "/system" && u.Path != "/session" {
		return nil, fmt.Errorf("libvirt URI %q: the path must be /system or /session", raw)
	}
	t := &target{uri: raw, remote: golibvirt.RemoteURI(u), session: u.Path == "/session"}
	if transport == "" && u.Host != "" {
		transport = "tls" // libvirt's default for a URI with a host
	}
	switch transport {
	case "", "unix":
		if u.Host != "" {
			return nil, fmt.Errorf("libvirt URI %q: a unix socket URI names no host: use qemu+ssh://%s%s to reach another machine", raw, u.Host, u.Path)
		}
		sock := u.Query().Get("socket")
		if sock == "" {
			sock = localSocket(t.session)
			t.ownSession = t.session
		}
		t.local = true
		t.dialer = unixDialer(sock)
	case "ssh":
		d, err := newSSHDialer(u)
		if err != nil {
			return nil, fmt.Errorf("libvirt URI %q: %w", raw, err)
		}
		t.dialer, t.ssh = d, d
	case "tcp", "tls", "libssh", "libssh2":
		t.own = u // go-libvirt's own dialers, through its URI parser (connect.go)
	default:
		return nil, fmt.Errorf("libvirt URI %q: transport %q is not supported: use unix, ssh, tcp, tls or libssh", raw, transport)
	}
	return t, nil
}

// localSocket is where the local daemon listens: the system one under
// /run/libvirt, a user's session one under XDG_RUNTIME_DIR (libvirt's own
// choice, ~/.cache/libvirt without it).
func localSocket(session bool) string {
	if !session {
		return "/run/libvirt/libvirt-sock"
	}
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		return filepath.Join(rt, "libvirt", "libvirt-sock")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "libvirt", "libvirt-sock")
}

type unixDialer string

func (s unixDialer) Dial() (net.Conn, error) {
	c, err := net.DialTimeout("unix", string(s), dialTimeout)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no libvirt daemon listens on %s: start libvirtd (or virtqemud)", s)
		}
		return nil, err
	}
	return c, nil
}
