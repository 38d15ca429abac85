package sshx

import (
	"fmt"
	"strings"
)

// HostSuffix names VMs in OpenSSH configs: `ssh web1.fvm`. A suffix rather than the
// bare name so a block appended to ~/.ssh/config never shadows a real host.
const HostSuffix = ".fvm"

// HostAlias is the OpenSSH Host name and HostKeyAlias for a VM.
func HostAlias(name string) string { return name + HostSuffix }

// SSHConfigInfo is what an OpenSSH config block needs to reach a VM.
type SSHConfigInfo struct {
	HostName       string // 127.0.0.1 when empty
	Port           int
	User           string
	IdentityFile   string // fvm's private key
	KnownHostsFile string // holds KnownHostsLine(HostKeyAlias, hostKey)
	HostKeyAlias   string // HostAlias(name) when empty
	// MuxDir, when set, is where OpenSSH keeps its multiplexing sockets
	// (ControlMaster): later ssh, scp and rsync runs reuse one connection.
	MuxDir string
	// Alias is the block's Host name (HostAlias(name) when empty).
	Alias string
	// ProxyCommand reaches HostName:Port from elsewhere (a VM on a remote
	// host: through that server), as ssh_config takes it.
	ProxyCommand string
	// Comment goes above the block.
	Comment string
}

// SSHConfig returns an OpenSSH config block for the VM, `Host NAME.fvm`, with strict
// host-key checking against the VM's own known_hosts file. The alias keeps the
// pinned key independent of the forwarded port, which changes between boots.
func SSHConfig(name string, info SSHConfigInfo) string {
	host := info.HostName
	if host == "" {
		host = "127.0.0.1"
	}
	alias := info.HostKeyAlias
	if alias == "" {
		alias = HostAlias(name)
	}
	hostLine := info.Alias
	if hostLine == "" {
		hostLine = HostAlias(name)
	}
	var b strings.Builder
	for _, c := range strings.Split(info.Comment, "\n") {
		if c != "" {
			fmt.Fprintf(&b, "# %s\n", c)
		}
	}
	fmt.Fprintf(&b, "Host %s\n", hostLine)
	line := func(k, v string) { fmt.Fprintf(&b, "  %s %s\n", k, v) }
	line("HostName", host)
	line("Port", fmt.Sprint(info.Port))
	line("User", info.User)
	if info.IdentityFile != "" {
		line("IdentityFile", configPath(info.IdentityFile))
		line("IdentitiesOnly", "yes")
	}
	if info.ProxyCommand != "" {
		line("ProxyCommand", info.ProxyCommand)
	}
	line("UserKnownHostsFile", configPath(info.KnownHostsFile))
	line("HostKeyAlias", alias)
	line("StrictHostKeyChecking", "yes")
	line("PasswordAuthentication", "no")
	if info.MuxDir != "" {
		line("ControlMaster", "auto")
		line("ControlPath", quoteConfig(strings.ReplaceAll(strings.TrimSuffix(info.MuxDir, "/"), "%", "%%")+"/ssh-%C"))
		line("ControlPersist", "10m")
	}
	return b.String()
}

// configPath escapes a path for ssh_config: % starts a token in these keywords and
// a path with spaces (macOS's "Application Support") must be quoted.
func configPath(p string) string { return quoteConfig(strings.ReplaceAll(p, "%", "%%")) }

// quoteConfig quotes a value with spaces or quotes for ssh_config.
func quoteConfig(p string) string {
	if strings.ContainsAny(p, " \t\"'#\\") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
	}
	return p
}

// KnownHostsLine formats a known_hosts line "alias keytype base64" for the host key
// (an authorized_keys line; its comment is dropped).
func KnownHostsLine(alias, hostKey string) string {
	if k, err := ParsePublicKey(hostKey); err == nil {
		return alias + " " + AuthorizedKey(k)
	}
	f := strings.Fields(hostKey)
	if len(f) >= 2 {
		return alias + " " + f[0] + " " + f[1]
	}
	return alias + " " + strings.TrimSpace(hostKey)
}
