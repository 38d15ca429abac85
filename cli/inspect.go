package cli

import (
	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
)

func newInspectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show VMs as JSON: spec, state, paths, SSH port",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			var out []api.VM
			for _, name := range args {
				v, err := c.Get(cmd.Context(), name)
				if err != nil {
					return err
				}
				out = append(out, v)
			}
			if len(out) == 1 {
				return writeJSON(a.out, out[0])
			}
			return writeJSON(a.out, out)
		},
	}
}
