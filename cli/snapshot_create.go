package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/vm"
)

func newSnapshotCreateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "create NAME [TAG]",
		Short: "Snapshot a VM: a running one's disk and memory with a short pause, a stopped one's disk",
		Example: `  fvm snapshot create web1
  fvm snapshot create web1 before-upgrade`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			var tag string
			if len(args) == 2 {
				tag = args[1]
			}
			t0 := time.Now()
			s, err := c.CreateSnapshot(cmd.Context(), args[0], tag)
			if err != nil {
				return err
			}
			what := "disk"
			if s.Memory {
				what = "disk and memory"
			}
			pause := ""
			if s.PauseSeconds > 0 {
				verb := "paused"
				if !s.Memory {
					verb = "had its filesystems frozen"
				}
				pause = fmt.Sprintf("; the guest %s for %s", verb, (time.Duration(s.PauseSeconds * float64(time.Second))).Round(time.Millisecond))
			}
			a.phase("Snapshot %s of %s (%s, %s) in %s%s", s.Tag, args[0], what, vm.FormatSize(s.Bytes), since(t0), pause)
			if s.Notice != "" {
				a.phase("Note: %s", s.Notice)
			}
			fmt.Fprintln(a.out, s.Tag)
			return nil
		},
	}
}
