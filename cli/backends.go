package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/vm"
)

// The CLI knows no backend by name: the host registers them (core/host), and
// help and completion ask it, when one is running.

const backendUsage = "hypervisor backend, kept for the VM's life: " + vm.Auto + " (the first of the host's backends that can run the VM) or one of the host's backends (`fvm check` lists them)"

// hostBackends are the running host's backends, preferred first, and those it
// lacks with why; nil when no host answers at once (help never starts one).
func (a *app) hostBackends(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	c := client.New(a.layout.SocketPath())
	c.Version = Version
	info, err := c.Host(ctx)
	if err != nil {
		return nil
	}
	return info.BackendNames()
}

// withBackends makes --backend's help and completion name the host's backends.
func (a *app) withBackends(cmd *cobra.Command) {
	parent := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		if f := c.Flags().Lookup(config.KeyBackend); f != nil {
			if names := a.hostBackends(c.Context()); len(names) > 0 {
				f.Usage = backendUsage + "; this host has " + strings.Join(names, ", ")
			}
		}
		parent(c, args)
	})
	cmd.RegisterFlagCompletionFunc(config.KeyBackend, func(c *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return append([]string{vm.Auto}, a.hostBackends(c.Context())...), cobra.ShellCompDirectiveNoFileComp
	})
}
