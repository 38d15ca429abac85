package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/remote"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// remoteSSHConfig prints the OpenSSH block of a VM on another machine: the
// VM's SSH port is on that machine's 127.0.0.1, reached with `ssh -W` through
// the server over fvm's shared connection; its host key is pinned from a
// known_hosts file written here.
func (a *app) remoteSSHConfig(h remote.Host, name string, info api.SSHInfo, noMux bool) error {
	t, err := a.transport(h)
	if err != nil {
		return err
	}
	sel, _ := a.selection()
	where := sel.Context
	if where == "" || where == remote.DefaultContext {
		where = h.Server
	}
	alias := name + "." + safeName(where) + sshx.HostSuffix
	known := filepath.Join(a.layout.DataDir, "remote", safeName(h.Name()), name+".known_hosts")
	if err := os.MkdirAll(filepath.Dir(known), 0o700); err != nil {
		return err
	}
	if err := store.WriteFileAtomic(known, []byte(sshx.KnownHostsLine(alias, info.HostKey)+"\n"), 0o600); err != nil {
		return fmt.Errorf("known_hosts of %s: %w", name, err)
	}
	muxDir := ""
	if !noMux {
		muxDir = t.ControlDir
	}
	_, err = fmt.Fprint(a.out, sshx.SSHConfig(name, sshx.SSHConfigInfo{
		Alias: alias, HostName: info.Host, Port: info.Port, User: info.User,
		KnownHostsFile: known, HostKeyAlias: alias, MuxDir: muxDir,
		ProxyCommand: proxyCommand(t),
		Comment:      fmt.Sprintf("VM %s on %s (through that server); it logs in with your own keys", name, h),
	}))
	return err
}

// proxyCommand is ssh_config's ProxyCommand to the VM's port on the server:
// the transport's own ssh options (strict host keys, its shared connection)
// with -W. ssh_config expands % tokens in it: every % of ours is doubled.
func proxyCommand(t *remote.SSH) string {
	argv := append([]string{"ssh"}, t.Options()...)
	argv = append(argv, "-W", "HOSTPORT", "--", t.Host.Server)
	line := strings.ReplaceAll(remote.ShellQuote(argv), "%", "%%")
	return strings.Replace(line, "HOSTPORT", "%h:%p", 1)
}

var unsafeNameRE = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// safeName makes a host or context name fit a file or Host name.
func safeName(s string) string { return strings.Trim(unsafeNameRE.ReplaceAllString(s, "_"), "_") }
