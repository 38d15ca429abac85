package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func newRmCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove VMs and everything they own (disk, seed, logs)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			var errs []error
			for _, name := range args {
				r, err := c.RemoveVM(cmd.Context(), name, force)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(a.out, name)
				a.kept(r.Kept)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove running VMs")
	return cmd
}
