package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/vm"
)

func newImagePruneCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Delete cached base disks no image and no VM uses, disk layers no VM or snapshot reads, and download leftovers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.PruneImages(cmd.Context())
			if err != nil {
				return err
			}
			for _, p := range res.Removed {
				fmt.Fprintln(a.out, p)
			}
			a.phase("Pruned %d file(s), freed %s", len(res.Removed), vm.FormatSize(res.Freed))
			a.kept(res.Kept)
			return nil
		},
	}
}
