package menu

import (
	"regexp"
	"strings"
)

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote quotes one word for a POSIX shell.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// commandLine renders env assignments and argv as one shell command line.
func commandLine(env, argv []string) string {
	var words []string
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		words = append(words, k+"="+shellQuote(v))
	}
	for _, a := range argv {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

// SSHCommand is what Copy SSH Command puts on the clipboard: `fvm ssh NAME`,
// with this host's environment (FVM_HOME) when it is not the default.
// With a remote host shown, --context NAME reaches it.
func (m *Menu) SSHCommand(name string) string {
	return commandLine(m.opts.Env, append(append([]string{"fvm"}, m.contextArgs()...), "ssh", name))
}

// fvmCommand is a command line running this app's fvm CLI on the host shown.
func (m *Menu) fvmCommand(args ...string) string {
	return commandLine(m.opts.Env, append(append([]string{m.opts.FvmPath}, m.contextArgs()...), args...))
}
