package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

func newImagesCmd(a *app) *cobra.Command {
	var format string
	var available bool
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List cached and local images (--available: the catalog)",
		Long: `List the images VMs can be created from without downloading: catalog images
pulled into the cache (by reference, e.g. debian:12), local builds and imports.
With --available, list the catalog of official cloud images "fvm pull" knows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			if available {
				items, err := c.Catalog(cmd.Context())
				if err != nil {
					return err
				}
				if format == "json" {
					return writeJSON(a.out, items)
				}
				return printCatalog(a, items)
			}
			imgs, err := c.Images(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				if imgs == nil {
					imgs = []api.Image{}
				}
				return writeJSON(a.out, imgs)
			}
			tw := tabwriter.NewWriter(a.out, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tBUILD\tARCH\tSIZE\tWARM\tDIGEST\tAGE")
			var broken []string
			for _, im := range imgs {
				name := im.Name
				if im.Ref != "" {
					name = im.Ref
				}
				if im.Broken != "" {
					fmt.Fprintf(tw, "%s\tbroken\t-\t-\t-\t-\t-\t-\n", cleanLine(im.Name))
					broken = append(broken, fmt.Sprintf("image %s is broken: %s", im.Name, cleanLine(im.Broken)))
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cleanLine(name), cleanLine(dash(im.Version)), cleanLine(dash(im.Build)), cleanLine(string(im.Arch)),
					vm.FormatSize(im.Size), warmText(im.Warm), cleanLine(shortDigest(im.Digest)), ago(im.CreatedAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, b := range broken {
				fmt.Fprintln(a.errOut, b)
			}
			if len(imgs) == 0 {
				fmt.Fprintln(a.errOut, "no images yet: pull one with `fvm pull debian` (see `fvm images --available`) or build one with `fvm image build debian`")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	cmd.Flags().BoolVar(&available, "available", false, "list the catalog of images that can be pulled")
	return cmd
}

func printCatalog(a *app, items []api.CatalogItem) error {
	tw := tabwriter.NewWriter(a.out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDISTRIBUTION\tCODENAME\tARCHES\tDEFAULT\tCACHED\tVERIFIED BY")
	for _, it := range items {
		def := ""
		if it.Default {
			def = "yes (" + it.Distro + ")"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\t%s\n", cleanLine(it.Ref), cleanLine(it.Title), cleanLine(it.Version), cleanLine(dash(it.Codename)),
			archList(it.Arches), dash(def), dash(archList(it.Cached)), cleanLine(dash(it.Trust)))
	}
	return tw.Flush()
}

func archList(as []vm.Arch) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ",")
}

// warmText sums up an image's warm snapshots: "2 (1.1G)", "-" for none.
func warmText(ws []api.WarmSnapshot) string {
	if len(ws) == 0 {
		return "-"
	}
	var n int64
	spares := 0
	for _, w := range ws {
		n += w.Bytes
		if w.Spare {
			spares++
		}
	}
	if spares > 0 {
		return fmt.Sprintf("%d (%s, %d spare)", len(ws), vm.FormatSize(n), spares)
	}
	return fmt.Sprintf("%d (%s)", len(ws), vm.FormatSize(n))
}

// warmText1 says that a new VM is a warm clone.
func warmText1(v api.VM) string {
	if v.Spec.Warm != "" {
		return " (a clone of its warm snapshot)"
	}
	return ""
}
