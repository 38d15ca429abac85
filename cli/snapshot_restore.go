package cli

import (
	"time"

	"github.com/spf13/cobra"
)

func newSnapshotRestoreCmd(a *app) *cobra.Command {
	var force, wait bool
	cmd := &cobra.Command{
		Use:   "restore NAME TAG",
		Short: "Bring a VM back to a snapshot: running where it was (or booted from its disk); what it did since is discarded",
		Long: `Restore a VM to one of its snapshots. With memory the VM is back exactly where it
was (processes, tmpfs; its clock corrected) in seconds; a disk-only snapshot boots
from that disk. Everything the VM did after the snapshot (disk and memory) is
discarded: a running VM needs --force.`,
		Example: `  fvm snapshot restore web1 before-upgrade --force`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			t0 := time.Now()
			v, err := c.RestoreSnapshot(ctx, args[0], args[1], force)
			if err != nil {
				return err
			}
			if v.Notice != "" {
				a.phase("Note: %s", v.Notice)
			}
			a.phase("%s %s to snapshot %s (%s): hypervisor up in %s", bootVerb(v), args[0], args[1], accelText(v.Accel), since(t0))
			return a.waitReady(ctx, c, v, t0, wait)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "restore a running VM (what it did since the snapshot is lost)")
	cmd.Flags().BoolVar(&wait, "wait", false, "also wait until cloud-init finished")
	return cmd
}
