package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newPortsCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ports NAME",
		Short: "List a VM's port forwards: -p ones and those made because the guest listens",
		Long: `List a VM's port forwards. Besides the -p ones, every TCP port of 1024 or
more that a guest process listens on (on all its addresses or its loopback) is
forwarded by itself to the same port on 127.0.0.1, or the next free one, within
a couple of seconds, and removed when the guest stops listening. Turn that off
with --no-auto-ports at run/create, or ports.auto: false in the config file;
ports.privileged: true forwards ports below 1024 too; ports.address picks
another host address (mind what that exposes).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			ps, err := c.Ports(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(a.out, ps)
			}
			tw := tabwriter.NewWriter(a.out, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "HOST\tGUEST\tHOW")
			for _, p := range ps {
				how := p.Via
				if p.Auto {
					how = "auto (" + p.Via + ")"
				}
				fmt.Fprintf(tw, "%s:%d\t%d/tcp\t%s\n", p.HostIP, p.HostPort, p.GuestPort, how)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if h := a.remoteHost(); h != nil && len(ps) > 0 {
				a.phase("These listen on %s; `fvm port-forward %s GUEST` brings a port to this machine", h.Name(), args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return cmd
}
