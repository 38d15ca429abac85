package cli

import (
	"time"

	"github.com/spf13/cobra"
)

func newStartCmd(a *app) *cobra.Command {
	var noWait, wait bool
	cmd := &cobra.Command{
		Use:   "start NAME...",
		Short: "Boot stopped VMs and wait until SSH answers",
		Long: `Boot stopped VMs. Each returns once its SSH answers (the host then holds the
connection that exec and ssh use); cloud-init may still be running then:
--wait returns only once it finished (user-data, packages), like "fvm wait".`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			for _, name := range args {
				t0 := time.Now()
				v, err := c.Start(ctx, name)
				if err != nil {
					return err
				}
				a.phase("Booting %s (%s): hypervisor up in %s", name, accelText(v.Accel), since(t0))
				if noWait {
					continue
				}
				if done, err := a.startInstalling(ctx, c, v); done || err != nil { // ISO VMs: install.go
					if err != nil {
						return err
					}
					continue
				}
				if err := a.waitReady(ctx, c, v, t0, wait); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the hypervisor runs, without waiting for SSH")
	cmd.Flags().BoolVar(&wait, "wait", false, "also wait until cloud-init finished (user-data, packages)")
	cmd.MarkFlagsMutuallyExclusive("no-wait", "wait")
	return cmd
}
