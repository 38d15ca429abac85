package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/vm"
)

func newSnapshotLsCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls NAME",
		Aliases: []string{"list"},
		Short:   "List a VM's snapshots: tag, when, size, with or without memory",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			snaps, err := c.Snapshots(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.out, snaps)
			}
			tw := tabwriter.NewWriter(a.out, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "TAG\tCREATED\tSIZE\tMEMORY\tPAUSE")
			for _, s := range snaps {
				mem, pause := "no (disk only)", "-"
				if s.Memory {
					mem = "yes"
				}
				if s.PauseSeconds > 0 {
					pause = fmt.Sprintf("%.0f ms", s.PauseSeconds*1000)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cleanLine(s.Tag), s.CreatedAt.Local().Format("2006-01-02 15:04:05"), vm.FormatSize(s.Bytes), mem, pause)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}
