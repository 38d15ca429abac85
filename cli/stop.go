package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
)

func newStopCmd(a *app) *cobra.Command {
	cmd := newStopLikeCmd(a, "stop", "Shut VMs down (ACPI power-off, then kill after --timeout); --save suspends them", "Stopped",
		func(ctx context.Context, c *client.Client, name string, req api.StopRequest) error {
			_, err := c.Stop(ctx, name, req)
			if err == nil && req.Save {
				a.phase("%s suspended: `fvm start %s` resumes it", name, name)
			}
			return err
		})
	cmd.Flags().Bool("save", false, "suspend instead: save the VM's memory to its directory; `fvm start` resumes it (same as `fvm suspend`)")
	return cmd
}

func newRestartCmd(a *app) *cobra.Command {
	return newStopLikeCmd(a, "restart", "Stop and start VMs, waiting until SSH answers as start does", "Restarted",
		func(ctx context.Context, c *client.Client, name string, req api.StopRequest) error {
			t0 := time.Now()
			v, err := c.Restart(ctx, name, req)
			if err != nil {
				return err
			}
			if v.Spec.ISO != "" {
				return nil // an installer has no SSH to wait for (install.go)
			}
			return a.waitReady(ctx, c, v, t0, false)
		})
}

// newStopLikeCmd builds a verb that stops VMs one by one with the stop flags.
func newStopLikeCmd(a *app, verb, short, done string, call func(context.Context, *client.Client, string, api.StopRequest) error) *cobra.Command {
	var req api.StopRequest
	cmd := &cobra.Command{
		Use:   verb + " NAME...",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			if f := cmd.Flags().Lookup("save"); f != nil {
				req.Save = f.Value.String() == "true"
			}
			for _, name := range args {
				t0 := time.Now()
				if err := call(cmd.Context(), c, name, req); err != nil {
					return err
				}
				a.phase("%s %s in %s", done, name, since(t0))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&req.Force, "force", "f", false, "kill the VM at once instead of a graceful ACPI shutdown")
	cmd.Flags().IntVarP(&req.TimeoutSeconds, "timeout", "t", 60, "seconds to wait for a graceful shutdown before killing")
	return cmd
}
