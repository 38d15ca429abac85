package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
)

func newCreateCmd(a *app) *cobra.Command {
	var f vmFlags
	cmd := &cobra.Command{
		Use:   "create IMAGE [ARCH] [NAME]",
		Short: "Create a VM without starting it",
		Example: `  fvm create debian-local web1 --disk 40G
  fvm start web1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := f.spec(a, cmd, args)
			if err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			t0 := time.Now()
			v, err := c.Create(cmd.Context(), api.CreateRequest{Spec: spec})
			if err != nil {
				return err
			}
			a.phase("Created VM %s in %s", v.Spec.Name, since(t0))
			fmt.Fprintln(a.out, v.Spec.Name)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
