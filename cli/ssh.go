package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newSSHCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ssh NAME [-- CMD ARGS...]",
		Short: "Open a shell on a VM, or run a command there",
		Example: `  fvm ssh web1
  fvm ssh web1 -- sudo systemctl status`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			args, command := splitDash(cmd, args)
			if len(args) != 1 {
				return fmt.Errorf("give one VM name, then the command after --: fvm ssh NAME -- CMD")
			}
			return a.runIn(cmd, args[0], command)
		},
	}
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
