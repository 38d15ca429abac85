package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/vm"
)

func newImageRmCmd(a *app) *cobra.Command {
	var arch string
	cmd := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove local images or cached catalog images (VMs keep their bases)",
		Long: `Remove images by local name (debian-local) or catalog reference (debian:12,
all cached arches unless --arch is given). VMs created from them keep working:
their base disk stays in the cache until "fvm image prune" finds no VM using it.`,
		Example: `  fvm image rm debian:12
  fvm image rm debian-local && fvm image prune`,
		Aliases: []string{"remove"},
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a2 vm.Arch
			if arch != "" {
				p, err := vm.ParseArch(arch)
				if err != nil {
					return err
				}
				a2 = p
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			var errs []error
			n := 0
			for _, name := range args {
				removed, err := c.RemoveImage(cmd.Context(), name, a2)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, img := range removed {
					n++
					label := img.Name
					if img.Ref != "" {
						label = fmt.Sprintf("%s (%s)", img.Ref, img.Arch)
					}
					fmt.Fprintln(a.out, label)
				}
			}
			if n > 0 {
				a.phase("Removed %d image(s); `fvm image prune` deletes base disks no VM uses", n)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&arch, "arch", "", "for a catalog reference: remove only this architecture")
	return cmd
}
