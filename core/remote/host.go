// Package remote reaches the fvm host of another machine through the user's
// own OpenSSH client, as docker does for DOCKER_HOST=ssh://: `ssh SERVER fvm
// system dial-stdio` bridges the SSH session's stdin and stdout to that user's
// host socket on SERVER (starting the host on demand), and every API
// connection of the client is one such session over one shared SSH
// connection (ControlMaster). It also keeps the named contexts (`fvm
// context`) and serves the server's side of the bridge.
//
// It imports no driver or daemon code: the CLI and the menu-bar app use it.
package remote

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Host is the address of a remote fvm host: ssh://[user@]server[:port].
// Server may be an alias of the user's ~/.ssh/config, which OpenSSH resolves
// (HostName, User, Port, IdentityFile, ProxyJump...).
type Host struct {
	User   string
	Server string
	Port   int // 0: OpenSSH's choice (the config's, else 22)
}

// ParseHost reads ssh://[user@]server[:port]. Anything else is refused with
// the form to use: fvm never passes a string to ssh that it could read as an
// option.
func ParseHost(s string) (Host, error) {
	bad := func(why string) (Host, error) {
		return Host{}, fmt.Errorf("host %q: %s: give ssh://[user@]server[:port]", s, why)
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return bad(err.Error())
	}
	switch {
	case u.Scheme == "" || u.Opaque != "":
		return bad("no ssh:// scheme")
	case u.Scheme != "ssh":
		return bad("only ssh:// hosts are supported, not " + u.Scheme + "://")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return bad("a path, query or fragment has no meaning here")
	case u.Hostname() == "":
		return bad("no server name")
	}
	h := Host{Server: u.Hostname()}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return bad("passwords are not taken: use a key or ssh-agent")
		}
		h.User = u.User.Username()
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad("port " + p + " is not 1-65535")
		}
		h.Port = n
	}
	for _, part := range []string{h.User, h.Server} {
		if strings.HasPrefix(part, "-") || strings.ContainsAny(part, " \t\r\n'\"\\;&|`$") {
			return bad(fmt.Sprintf("%q is no user or server name", part))
		}
	}
	return h, nil
}

// String is the canonical ssh:// form.
func (h Host) String() string {
	s := "ssh://"
	if h.User != "" {
		s += h.User + "@"
	}
	s += h.hostPort()
	return s
}

// Name is how messages name the server: user@server[:port].
func (h Host) Name() string {
	if h.User != "" {
		return h.User + "@" + h.hostPort()
	}
	return h.hostPort()
}

func (h Host) hostPort() string {
	server := h.Server
	if strings.Contains(server, ":") {
		server = "[" + server + "]" // IPv6
	}
	if h.Port != 0 {
		return server + ":" + strconv.Itoa(h.Port)
	}
	return server
}

// Jump is the form of ProxyJump and of ssh's destination for -J: [user@]server[:port].
func (h Host) Jump() string { return h.Name() }

// SSHArgs is the server as plain ssh's arguments: [-p PORT] [user@]server.
func (h Host) SSHArgs() string {
	s := ""
	if h.Port != 0 {
		s = "-p " + strconv.Itoa(h.Port) + " "
	}
	if h.User != "" {
		return s + h.User + "@" + h.Server
	}
	return s + h.Server
}
