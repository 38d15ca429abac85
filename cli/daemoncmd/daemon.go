// Package daemoncmd is the `fvm daemon` verb: it hosts VMs in this process, so it
// alone of the CLI imports drivers. main wires it into the command tree.
package daemoncmd

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/cli"
	"github.com/fvmhq/fvm/core/host"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
)

// New returns the `fvm daemon` command.
func New() *cobra.Command {
	return &cobra.Command{
		Use:   "daemon",
		Short: "Run the fvm host in the foreground (started on demand by other commands)",
		Long: `Run the fvm host: it serves the API on a Unix socket and runs the VMs.
Other commands start it on demand, detached, logging to daemon.log in the run
directory. VMs keep running when the host stops; the next host re-adopts them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			proc.CloseInheritedFDs() // e.g. a caller's lock: the host may outlive it by days
			layout := store.DefaultLayout()
			d := host.New(layout, cli.Version, os.Stderr)
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			return serveUntilSignalled(cmd.Context(), d.Serve, sigs, stopGrace, os.Exit, os.Stderr)
		},
	}
}
