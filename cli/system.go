package cli

import (
	"errors"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/remote"
)

// newSystemCmd holds plumbing other programs run, not people.
func newSystemCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "system",
		Short:  "Plumbing for other programs",
		Hidden: true,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "dial-stdio",
		Short: "Bridge stdin and stdout to this machine's fvm host (what a remote fvm runs over SSH)",
		Long: `Connect stdin and stdout to this user's fvm host socket, starting the host
when it is not running. A client on another machine runs this over SSH
(fvm --host ssh://server ...), as docker does with "docker system dial-stdio":
the first line written is a greeting with this fvm's API revision and version,
then the API's bytes flow both ways.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// This machine's host, whatever FVM_HOST or a context here says:
			// this command is the far end of someone's remote connection.
			a.sel = &remote.Selection{}
			if _, err := a.client(cmd.Context()); err != nil {
				var ve *client.VersionError
				if !errors.As(err, &ve) { // another revision's host: the client says what to do
					return err
				}
			}
			conn, err := net.Dial("unix", a.layout.SocketPath())
			if err != nil {
				return err
			}
			return remote.ServeStdio(conn, os.Stdin, os.Stdout, remote.Greeting(api.Revision, Version, a.layout.SocketPath()))
		},
	})
	return cmd
}
