package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
)

func newUpdateCmd(a *app) *cobra.Command {
	var download bool
	var format string
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Check cached catalog images for newer upstream builds (--download fetches them)",
		Long: `For every cached catalog image, ask upstream (or its mirror) for the current
build and print what is cached and what is available. With --download, fetch
the newer builds. VMs keep the base they were created from; "fvm image prune"
deletes bases no VM uses any more.`,
		Example: `  fvm update
  fvm update --download && fvm image prune`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			rows, err := c.CheckUpdates(ctx, api.UpdatesRequest{Mirrors: a.mirrors(), Indexes: a.indexes()})
			if err != nil {
				return err
			}
			if format == "json" {
				if err := writeJSON(a.out, rows); err != nil {
					return err
				}
			} else {
				printUpdates(a, rows)
			}
			failed, newer := 0, 0
			for _, r := range rows {
				switch {
				case r.Error != "":
					failed++
				case r.Newer:
					newer++
				}
			}
			if download {
				for _, r := range rows {
					if r.Newer && r.Error == "" {
						if _, err := a.pull(ctx, c, api.PullRequest{Ref: r.Ref, Arch: r.Arch}); err != nil {
							return err
						}
					}
				}
				if newer > 0 {
					a.phase("Downloaded %d newer build(s); VMs keep their bases: `fvm image prune` frees unused ones", newer)
				}
			} else if newer > 0 {
				a.phase("%d newer build(s) available: `fvm update --download` fetches them", newer)
			}
			if failed > 0 {
				return fmt.Errorf("could not ask upstream about %d image(s): see the table; check the network or the mirror setting", failed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&download, "download", false, "download the newer builds")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}

func printUpdates(a *app, rows []api.ImageUpdate) {
	if len(rows) == 0 {
		fmt.Fprintln(a.errOut, "no cached catalog images: pull one with `fvm pull debian`")
		return
	}
	tw := tabwriter.NewWriter(a.out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tARCH\tCACHED BUILD\tAVAILABLE BUILD\tSTATUS")
	for _, r := range rows {
		status := "up to date"
		switch {
		case r.Error != "":
			status = "error: " + r.Error
		case r.Newer:
			status = "newer available"
		}
		avail := "-"
		if r.Error == "" {
			avail = buildOrDigest(r.AvailableBuild, r.AvailableDigest)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Ref, r.Arch, buildOrDigest(r.CachedBuild, r.CachedDigest), avail, status)
	}
	tw.Flush()
}

// buildOrDigest names a build by its id, or by its checksum when upstream only
// offered a "latest" alias.
func buildOrDigest(build, digest string) string {
	if build != "" {
		return build
	}
	if digest != "" {
		return "latest (" + shortDigest(digest) + ")"
	}
	return "-"
}
