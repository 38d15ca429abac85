package cli

import (
	"time"

	"github.com/spf13/cobra"
)

func newStartCmd(a *app) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "start NAME...",
		Short: "Boot stopped VMs and wait until SSH answers",
		Args:  cobra.MinimumNArgs(1),
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
				t, err := sshTarget(ctx, c, name)
				if err != nil {
					return err
				}
				cl, err := waitSSH(ctx, t)
				if err != nil {
					return err
				}
				cl.Close()
				a.phase("%s: SSH ready in %s", name, since(t0))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the hypervisor runs, without waiting for SSH")
	return cmd
}
