package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/sshx"
)

func newSSHConfigCmd(a *app) *cobra.Command {
	var noMux bool
	cmd := &cobra.Command{
		Use:   "ssh-config NAME",
		Short: "Print an OpenSSH config block for a VM (strict host-key checking)",
		Long: `Print an OpenSSH config block so plain ssh, scp, rsync and editors reach the VM
with its host key pinned (known_hosts file + HostKeyAlias, StrictHostKeyChecking yes).
For a VM on a remote host (--host, --context) the block goes through that
server (ProxyCommand: ssh -W over fvm's shared connection to it), still pinning
the VM's key, whose known_hosts file is written here; it logs in with your own
keys, which a VM created from this machine authorizes (~/.ssh/*.pub, or
--ssh-key at create).

It turns on OpenSSH's connection sharing (ControlMaster auto, sockets in fvm's run
directory, kept 10 minutes), so every ssh after the first skips the handshake;
--no-mux leaves that out.`,
		Example: `  fvm ssh-config web1 >> ~/.ssh/config && ssh web1.fvm
  fvm ssh-config web1 > /tmp/cfg && scp -F /tmp/cfg file web1.fvm:`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			info, err := c.SSHInfo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if h := a.remoteHost(); h != nil { // through the server (sshconfig_remote.go)
				return a.remoteSSHConfig(*h, args[0], info, noMux)
			}
			muxDir := ""
			if !noMux {
				if err := a.layout.EnsureRunDir(); err != nil {
					return fmt.Errorf("run dir %s: %w", a.layout.RunDir, err)
				}
				muxDir = a.layout.RunDir
			}
			_, err = fmt.Fprint(a.out, sshx.SSHConfig(args[0], sshx.SSHConfigInfo{
				HostName: info.Host, Port: info.Port, User: info.User, IdentityFile: info.IdentityFile,
				KnownHostsFile: info.KnownHosts, HostKeyAlias: info.HostKeyAlias, MuxDir: muxDir,
			}))
			return err
		},
	}
	cmd.Flags().BoolVar(&noMux, "no-mux", false, "leave out ControlMaster/ControlPath/ControlPersist (one connection per ssh run)")
	return cmd
}
