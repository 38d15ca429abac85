package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newSSHCmd(a *app) *cobra.Command {
	var user, key string
	cmd := &cobra.Command{
		Use:   "ssh NAME [-- CMD ARGS...]",
		Short: "Open a shell on a VM, or run a command there",
		Long: `Open a shell on a VM, or run a command there, through the host's connection
to it. --user and --key log in as another guest user or with another key, over
a connection of this command's own (the VM's pinned host key is checked all the same).`,
		Example: `  fvm ssh web1
  fvm ssh web1 -- sudo systemctl status
  fvm ssh web1 --user deploy --key ~/.ssh/deploy_ed25519`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			args, command := splitDash(cmd, args)
			if len(args) != 1 {
				return fmt.Errorf("give one VM name, then the command after --: fvm ssh NAME -- CMD")
			}
			if user == "" && key == "" {
				return a.runIn(cmd, args[0], command)
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			code, err := a.directSSH(cmd.Context(), c, args[0], command, user, key)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "user", "l", "", "log in as this guest user (default: the VM's user)")
	cmd.Flags().StringVarP(&key, "key", "i", "", "private key file to log in with (default: fvm's key)")
	return cmd
}

func newExecCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec NAME CMD [ARGS...]",
		Short: "Run a command in a VM and exit with its status",
		Example: `  fvm exec web1 cat /etc/os-release
  fvm exec web1 -- ls -la /`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, command, err := execArgs(args)
			if err != nil {
				return err
			}
			return a.runIn(cmd, name, command)
		},
	}
	cmd.Flags().SetInterspersed(false) // flags after the command belong to it
	return cmd
}

// execArgs splits `exec NAME [--] CMD ARGS...`. Flag parsing stops at NAME, so a
// "--" after it reaches here and is dropped rather than run as the command.
func execArgs(args []string) (name, command string, err error) {
	name, rest := args[0], args[1:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return "", "", fmt.Errorf("no command to run in %q: fvm exec NAME CMD [ARGS...]", name)
	}
	return name, shellJoin(rest), nil
}

// runIn runs command (a shell when empty) in a running VM through the host.
func (a *app) runIn(cmd *cobra.Command, name, command string) error {
	ctx := cmd.Context()
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	code, err := a.remote(ctx, c, name, command)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}

func stdinFile() *os.File { return os.Stdin }
