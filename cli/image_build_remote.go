package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/fvmhq/fvm/core/remote"
)

// remoteBuild runs `fvm image build` on a remote host's machine, by the fvm
// there over SSH (the build is that machine's work: mmdebstrap, its apt
// sources and cache), with the same arguments; its output and exit status
// are this command's.
func (a *app) remoteBuild(cmd *cobra.Command, h remote.Host, args []string) error {
	argv := append([]string{"fvm", "image", "build"}, args...)
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "host", "context":
			return
		case "sources":
			err = fmt.Errorf("--sources %s is a file of this machine, and the build runs on %s: copy it there and run `fvm image build` there (without --sources, the build uses that machine's apt sources when they name the release)", f.Value, h.Name())
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				argv = append(argv, "--"+f.Name+"="+v)
			}
			return
		}
		argv = append(argv, "--"+f.Name+"="+f.Value.String())
	})
	if err != nil {
		return err
	}
	t, err := a.transport(h)
	if err != nil {
		return err
	}
	tty := term.IsTerminal(int(os.Stdin.Fd()))
	c := t.Command(cmd.Context(), tty, argv...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, a.out, a.errOut
	if !tty {
		c.Stdin = nil
	}
	a.phase("Building on %s: %s", h.Name(), remote.ShellQuote(argv))
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return exitError{ee.ExitCode()} // the remote fvm said why
	}
	if err != nil {
		return fmt.Errorf("image build on %s: %w", h.Name(), err)
	}
	return nil
}
