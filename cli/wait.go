package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
)

func newWaitCmd(a *app) *cobra.Command {
	var what string
	cmd := &cobra.Command{
		Use:   "wait NAME...",
		Short: "Wait until running VMs are ready: cloud-init finished (default) or SSH answers",
		Long: `Wait until running VMs are ready. By default that is when cloud-init has finished
in the guest, so user-data scripts and package installs are done; --for ssh returns
as soon as SSH answers. It fails when cloud-init reports an error.`,
		Example: `  fvm run -d debian web1 && fvm wait web1 && fvm exec web1 -- nginx -v
  fvm wait --for ssh web1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if what != api.WaitSSH && what != api.WaitCloudInit {
				return fmt.Errorf("--for %q is unknown: use %s or %s", what, api.WaitCloudInit, api.WaitSSH)
			}
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			for _, name := range args {
				if what == api.WaitSSH {
					if _, err := c.Wait(ctx, name, api.WaitRequest{For: api.WaitSSH}); err != nil {
						return err
					}
					a.phase("%s: SSH ready", name)
					continue
				}
				if err := a.waitCloudInit(ctx, c, name); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&what, "for", api.WaitCloudInit, "what to wait for: cloud-init or ssh")
	return cmd
}
