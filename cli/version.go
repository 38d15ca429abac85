package cli

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
)

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the fvm version",
		Args:  cobra.NoArgs,
		Long: `Print this fvm's version, then the host's it talks to (this machine's when
it runs, or the remote one of --host/--context, which is reached, and started
there, on demand).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := fmt.Fprintf(a.out, "fvm %s (%s, %s/%s, API revision %d)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, api.Revision); err != nil {
				return err
			}
			sel, err := a.selection()
			if err != nil {
				return err
			}
			if !sel.Remote() { // never start a host just to print versions
				info, err := client.New(a.layout.SocketPath()).Ping(cmd.Context(), 2*time.Second)
				var ve *client.VersionError
				if errors.As(err, &ve) {
					fmt.Fprintf(a.out, "host: this machine: %v\n", err)
					return nil
				}
				if err != nil {
					fmt.Fprintf(a.out, "host: this machine: not running (commands start it)\n")
					return nil
				}
				a.hostInfo = &info
			} else if _, err := a.client(cmd.Context()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "host: %s\n", a.hostLine())
			return err
		},
	}
}
