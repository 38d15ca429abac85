package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/desktop"
	"github.com/fvmhq/fvm/core/vm"
)

func newDisplayCmd(a *app) *cobra.Command {
	var printURL, serial bool
	cmd := &cobra.Command{
		Use:   "display NAME",
		Short: "Show a VM's screen: its window, or the host's web console in your browser",
		Long: `Show a VM's screen.

A VM with a window of its own (vz, on macOS) is brought to the front. Any other
VM is shown by the host's web console: a page on 127.0.0.1 with the screen and
a serial console tab, opened in your browser ($BROWSER, else xdg-open; open on
macOS). The page follows the VM through reboots, stops and starts.

The address carries a one-time code: the first browser to open it (within 2
minutes) gets the session, which lasts until the host stops; the address is
then spent. --print-url prints it instead of opening it.

With a remote host (--host, --context) the console is on that machine's
127.0.0.1: fvm listens on this machine's 127.0.0.1, tunnels each connection to
it through the host's API, opens (or prints) the local address, and keeps the
tunnel until Ctrl-C.

The port is free at each host start unless console.port is set in the config.`,
		Example: "  fvm display web1\n  fvm display --serial web1\n  fvm display --print-url web1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			d, err := c.Display(cmd.Context(), name, api.DisplayRequest{Serial: serial})
			if err != nil {
				return err
			}
			if d.Native {
				a.phase("%s is shown in its window", name)
				return nil
			}
			if a.remoteHost() != nil { // through a tunnel to this machine (display_remote.go)
				return a.displayTunnel(cmd.Context(), c, name, d, printURL)
			}
			if printURL {
				fmt.Fprintln(a.out, d.URL)
				return nil
			}
			if d.State != vm.Running {
				a.phase("%s is %s: the page connects once it runs (`fvm start %s`)", name, d.State, name)
			}
			if err := desktop.New(nil).OpenURL(d.URL); err != nil {
				return fmt.Errorf("open %q's console: %w; or open the address `fvm display --print-url %s` prints", name, err, name)
			}
			a.phase("Opened %s's console in your browser", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&printURL, "print-url", false, "print the web console's address instead of opening it")
	cmd.Flags().BoolVar(&serial, "serial", false, "open the serial console tab (`fvm console` attaches this terminal instead)")
	return cmd
}
