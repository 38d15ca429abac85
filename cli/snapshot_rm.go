package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func newSnapshotRmCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME TAG...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove snapshots of a VM (their disk layers go once no VM or snapshot reads them)",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			var errs []error
			for _, tag := range args[1:] {
				r, err := c.RemoveSnapshot(cmd.Context(), args[0], tag)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(a.out, tag)
				a.kept(r.Kept)
			}
			return errors.Join(errs...)
		},
	}
}
