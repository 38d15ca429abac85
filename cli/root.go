// Package cli holds the fvm command line: one file per verb. Client verbs reach
// VMs only through core/api/client; the `daemon` verb, which hosts VMs in this
// same binary, lives in cli/daemoncmd and is wired in by main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/remote"
	"github.com/fvmhq/fvm/core/store"
)

// Version is set at build time with -ldflags "-X github.com/fvmhq/fvm/cli.Version=...".
var Version = "dev"

// app is what every verb shares: where state lives, settings and output streams.
type app struct {
	layout store.Layout
	cfg    *viper.Viper
	out    io.Writer
	errOut io.Writer

	// The host to talk to: this machine's, or another's (hosts.go).
	flagHost, flagContext string
	sel                   *remote.Selection // resolved on first use
	conn                  *client.Client    // the client of the selected host, once connected
	hostInfo              *api.HostInfo     // what it said when connected
}

// exitError carries a remote command's exit status out of cobra without a message.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// NewRoot builds the command tree; extra adds verbs wired in by main (the daemon).
func NewRoot(extra ...*cobra.Command) *cobra.Command {
	a := &app{layout: store.DefaultLayout(), out: os.Stdout, errOut: os.Stderr}
	root := &cobra.Command{
		Use:   "fvm",
		Short: "Linux VMs from cloud images, as easy as docker run",
		Long: `fvm runs Linux virtual machines from cloud images.

  fvm image build debian          build a local Debian 12 image (no internet needed)
  fvm run debian-local            create, boot and open a shell on a new VM
  fvm run -d debian-local web1    ... in the background, named web1
  fvm ssh web1 -- uname -a        run a command in it
  fvm console web1 / display web1 its serial console here, its screen in a browser
  fvm ps / ls / stop / start / rm manage VMs
  fvm snapshot create web1 / fvm clone web1 web2   save a VM under a tag / fork it

State lives under FVM_HOME when set (see "fvm check" for the paths).

Another machine's VMs: --host ssh://[user@]server[:port] (or FVM_HOST), or a
named context (fvm context create/use, --context, FVM_CONTEXT): the same
commands, through your own OpenSSH; see "fvm context --help".`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(a.layout)
			if err != nil {
				return err
			}
			a.cfg = cfg
			return nil
		},
	}
	root.SetOut(os.Stdout)
	root.SetErr(os.Stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&a.flagHost, "host", "H", "", "the fvm host to use: ssh://[user@]server[:port] (default: FVM_HOST, the current context, else this machine's)")
	pf.StringVar(&a.flagContext, "context", "", "the context to use (see `fvm context ls`; default: FVM_CONTEXT, else the one `fvm context use` picked)")
	root.AddCommand(
		newRunCmd(a), newCreateCmd(a), newStartCmd(a), newStopCmd(a), newSuspendCmd(a), newRestartCmd(a), newRmCmd(a), newSnapshotCmd(a), newCloneCmd(a),
		newPsCmd(a), newLsCmd(a), newStatusCmd(a), newInspectCmd(a), newSSHCmd(a), newExecCmd(a), newSSHConfigCmd(a),
		newLogsCmd(a), newConsoleCmd(a), newDisplayCmd(a), newScreenshotCmd(a), newWaitCmd(a), newCpCmd(a), newPortsCmd(a), newImagesCmd(a), newImageCmd(a), newCheckCmd(a), newVersionCmd(a),
	)
	root.AddCommand(newPortForwardCmd(a), newContextCmd(a), newSystemCmd(a))
	root.AddCommand(newPullCmd(a), newUpdateCmd(a))
	root.AddCommand(extra...)
	return root
}

// Main runs the CLI and returns the process exit status.
func Main(extra ...*cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRoot(extra...)
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "fvm: interrupted")
		return 130
	}
	printError(os.Stderr, err)
	return 1
}

// printError prints the CLI's final error on one line, whatever it quotes:
// host and upstream text lose their control characters, and a newline or tab
// (a file name may hold one) is escaped, so the message never splits and a
// script reading the last line gets all of it.
func printError(w io.Writer, err error) {
	fmt.Fprintln(w, "fvm:", cleanLine(err.Error()))
}
