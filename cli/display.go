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

The address carries a token that is valid until the host stops. --print-url
prints it instead of opening it, e.g. to open it on another machine through an
SSH tunnel that keeps the port number:

  fvm display --print-url web1            # http://127.0.0.1:PORT/vm/web1/?token=...
  ssh -L PORT:127.0.0.1:PORT thishost     # then open that address there

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
			if printURL {
				fmt.Fprintln(a.out, d.URL)
				return nil
			}
			if d.State != vm.Running {
				a.phase("%s is %s: the page connects once it runs (`fvm start %s`)", name, d.State, name)
			}
			if err := desktop.New(nil).OpenURL(d.URL); err != nil {
				return fmt.Errorf("open %s's console: %w; or open the address `fvm display --print-url %s` prints", name, err, name)
			}
			a.phase("Opened %s's console in your browser", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&printURL, "print-url", false, "print the web console's address instead of opening it")
	cmd.Flags().BoolVar(&serial, "serial", false, "open the serial console tab (`fvm console` attaches this terminal instead)")
	return cmd
}
