package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/vm"
)

func newImagesCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List local images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			imgs, err := c.Images(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.out, imgs)
			}
			tw := tabwriter.NewWriter(a.out, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tARCH\tFORMAT\tSIZE\tVIRTUAL\tDIGEST\tCREATED")
			for _, im := range imgs {
				digest := im.Digest
				if len(digest) > 19 {
					digest = digest[:19]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", im.Name, dash(im.Version), im.Arch, im.Format,
					vm.FormatSize(im.Size), vm.FormatSize(im.Virtual), digest, ago(im.CreatedAt))
			}
			if len(imgs) == 0 {
				fmt.Fprintln(a.errOut, "no local images yet: build one with `fvm image build debian`")
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}
