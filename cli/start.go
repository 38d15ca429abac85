package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
)

// bootVerb says how a run began, for the progress line.
func bootVerb(v api.VM) string {
	if v.LastStart != nil && v.LastStart.Via == "spare" {
		return "Handed a spare clone (made ahead, kept ready) as"
	}
	switch v.Boot {
	case "resumed":
		return "Resumed"
	case "clone":
		return "Cloned"
	case "restored":
		return "Restored"
	}
	return "Booting"
}

func newStartCmd(a *app) *cobra.Command {
	var noWait, wait, cold bool
	var iso string
	cmd := &cobra.Command{
		Use:   "start NAME...",
		Short: "Boot stopped VMs and wait until SSH answers",
		Long: `Boot stopped VMs, or resume suspended ones from their saved state (--cold
discards it and boots from the disk). Each returns once its SSH answers (the host
then holds the connection that exec and ssh use); cloud-init may still be running
then: --wait returns only once it finished (user-data, packages), like "fvm wait".`,
		Aliases: []string{"resume"},
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			isoPath, err := startISO(iso, args)
			if err != nil {
				return err
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			for _, name := range args {
				t0 := time.Now()
				v, err := c.StartWith(ctx, name, api.StartRequest{Cold: cold, ISO: isoPath})
				if err != nil {
					return err
				}
				if v.Notice != "" {
					a.phase("Note: %s", v.Notice)
				}
				a.phase("%s %s (%s): hypervisor up in %s", bootVerb(v), name, accelText(v.Accel), since(t0))
				if noWait {
					continue
				}
				if done, err := a.startInstalling(ctx, c, v); done || err != nil { // ISO VMs: install.go
					if err != nil {
						return err
					}
					continue
				}
				if a.startedBlank(v) { // nothing to boot, nothing to wait for (blank.go)
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
	cmd.Flags().BoolVar(&cold, "cold", false, "discard a saved state (suspend) and boot from the disk")
	cmd.Flags().StringVar(&iso, "iso", "", "attach this installer ISO to a VM made without an image (`fvm create --name NAME`) and boot it")
	cmd.MarkFlagsMutuallyExclusive("no-wait", "wait")
	return cmd
}
