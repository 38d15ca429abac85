package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
)

func stopFlags(cmd *cobra.Command, req *api.StopRequest) {
	cmd.Flags().BoolVarP(&req.Force, "force", "f", false, "kill the VM at once instead of a graceful ACPI shutdown")
	cmd.Flags().IntVarP(&req.TimeoutSeconds, "timeout", "t", 60, "seconds to wait for a graceful shutdown before killing")
}

func newStopCmd(a *app) *cobra.Command {
	var req api.StopRequest
	cmd := &cobra.Command{
		Use:   "stop NAME...",
		Short: "Shut VMs down (ACPI power-off, then kill after --timeout)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			for _, name := range args {
				t0 := time.Now()
				if _, err := c.Stop(cmd.Context(), name, req); err != nil {
					return err
				}
				a.phase("Stopped %s in %s", name, since(t0))
			}
			return nil
		},
	}
	stopFlags(cmd, &req)
	return cmd
}

func newRestartCmd(a *app) *cobra.Command {
	var req api.StopRequest
	cmd := &cobra.Command{
		Use:   "restart NAME...",
		Short: "Stop and start VMs",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			for _, name := range args {
				t0 := time.Now()
				if _, err := c.Restart(cmd.Context(), name, req); err != nil {
					return err
				}
				a.phase("Restarted %s in %s", name, since(t0))
			}
			return nil
		},
	}
	stopFlags(cmd, &req)
	return cmd
}
