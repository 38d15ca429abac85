package cli

import (
	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

func newInspectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show VMs as JSON: spec, state, paths, SSH port, NIC (MAC and the guest's IP addresses)",
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
				if v.State == vm.Running { // its MAC and the guest's addresses (an older host has none)
					if n, err := c.NIC(cmd.Context(), name); err == nil {
						v.NIC = &n
					}
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
