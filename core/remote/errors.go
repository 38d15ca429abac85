package remote

import (
	"fmt"
	"strings"
)

// Error is a remote host that could not be reached, in one line that names
// the server and the fix.
type Error struct {
	Server string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Diagnosed marks an error whose message is complete as it is: callers print
// it without wrapping it in "cannot reach the host" again.
func (e *Error) Diagnosed() bool { return true }

// LostError is an SSH connection that ended under a command in flight: ssh
// was killed, or the network or the server went away.
type LostError struct {
	Server string
	How    string // ssh's exit and its last words
}

func (e *LostError) Error() string {
	return fmt.Sprintf("the SSH connection to %s was lost (%s)", e.Server, e.How)
}

// classify turns a failed ssh session (its exit status, stderr and whatever
// it printed instead of the greeting) into one line with the fix.
func classify(h Host, status int, stderr, stdout string) error {
	server := h.Name()
	e := func(format string, args ...any) error {
		return &Error{Server: server, Msg: fmt.Sprintf(format, args...)}
	}
	last := lastLine(stderr)
	switch {
	case strings.Contains(stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED"):
		return e("the SSH host key of %s has CHANGED since it was recorded in known_hosts: fvm refuses it; if the server was really reinstalled, check its new key's fingerprint and remove the old one with `ssh-keygen -R %s`", server, knownHostsName(h))
	case strings.Contains(stderr, "Host key verification failed") || strings.Contains(stderr, "host key is known for"):
		return e("the SSH host key of %s is not known: fvm never accepts an unknown key; check its fingerprint and add it to ~/.ssh/known_hosts (e.g. connect once with `ssh %s`)", server, sshCommandFor(h))
	case strings.Contains(stderr, "Permission denied") || strings.Contains(stderr, "Too many authentication failures"):
		who := h.User
		if who == "" {
			who = "your user name (or the User of ~/.ssh/config)"
		}
		return e("%s refused the login as %s (%s): check the user in ssh://USER@%s and that your key is in that user's ~/.ssh/authorized_keys (a key with a passphrase needs ssh-agent)", server, who, last, h.Server)
	case strings.Contains(stderr, "Could not resolve hostname"),
		strings.Contains(stderr, "Connection refused"),
		strings.Contains(stderr, "Connection timed out"),
		strings.Contains(stderr, "No route to host"),
		strings.Contains(stderr, "Network is unreachable"),
		strings.Contains(stderr, "Connection closed by"),
		strings.Contains(stderr, "kex_exchange_identification"):
		return e("cannot reach %s over SSH: %s", server, trimSSH(last))
	case status == 127 || strings.Contains(stderr, "fvm: not found") || strings.Contains(stderr, "fvm: command not found") ||
		strings.Contains(stderr, "fvm: No such file"):
		return e("fvm is not installed on %s (or not on its PATH for SSH sessions): install it there", server)
	case strings.Contains(stderr, `unknown command "system"`) || strings.Contains(stderr, `unknown command "dial-stdio"`):
		return e("the fvm on %s is too old to serve remote clients (it has no `fvm system dial-stdio`): upgrade fvm on %s", server, server)
	case strings.HasPrefix(last, "fvm: "):
		return e("the fvm host on %s could not be reached there: %s", server, strings.TrimPrefix(last, "fvm: "))
	case strings.TrimSpace(stdout) != "":
		return e("%s answered %q instead of fvm's greeting: is something in the login scripts of the SSH user printing text? (fvm system dial-stdio must be the only output)", server, firstWords(stdout))
	case last != "":
		return e("ssh to %s failed (exit status %d): %s", server, status, trimSSH(last))
	}
	return e("ssh to %s ended before fvm answered (exit status %d): try `ssh %s fvm system dial-stdio` to see why", server, status, sshCommandFor(h))
}

// revisionError says which side to upgrade when the remote fvm speaks
// another API revision.
func revisionError(h Host, remoteRev int, remoteVersion string, myRev int, myVersion string) error {
	them := "fvm"
	if remoteVersion != "" {
		them += " " + remoteVersion
	}
	me := "fvm"
	if myVersion != "" {
		me += " " + myVersion
	}
	fix := "upgrade fvm on " + h.Name()
	if remoteRev > myRev {
		fix = "upgrade fvm on this machine"
	}
	return &Error{Server: h.Name(), Msg: fmt.Sprintf("%s on %s speaks API revision %d; %s here speaks revision %d: %s", them, h.Name(), remoteRev, me, myRev, fix)}
}

// knownHostsName is the name known_hosts records the server under.
func knownHostsName(h Host) string {
	if h.Port != 0 && h.Port != 22 {
		return fmt.Sprintf("'[%s]:%d'", h.Server, h.Port)
	}
	return h.Server
}

func sshCommandFor(h Host) string { return h.SSHArgs() }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(s, "\r", "")), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

func trimSSH(s string) string { return strings.TrimPrefix(s, "ssh: ") }

func firstWords(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}
