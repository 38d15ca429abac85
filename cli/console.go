package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// detachKey is Ctrl-] (telnet's, virsh's and QEMU's own escape): it never
// reaches the guest.
const detachKey = 0x1d

func newConsoleCmd(a *app) *cobra.Command {
	var tail int
	cmd := &cobra.Command{
		Use:   "console NAME",
		Short: "Attach this terminal to a running VM's serial console (Ctrl-] detaches)",
		Long: `Attach this terminal to a running VM's serial console: the kernel's messages
and a login prompt (getty on ttyS0). The terminal is in raw mode, so every key,
Ctrl-C included, goes to the VM; Ctrl-] detaches, as does the end of standard
input. Detaching never stops the VM, and everything the VM writes is also kept
in its serial log (` + "`fvm logs NAME`" + `). Several consoles (and the web console's
serial tab) can be attached at once: they all see the same output.`,
		Example: "  fvm console web1\n  fvm console --tail 0 web1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.console(cmd.Context(), args[0], tail)
		},
	}
	cmd.Flags().IntVar(&tail, "tail", 20, "lines of earlier output to show first (0 for none, -1 for the whole log)")
	return cmd
}

func (a *app) console(ctx context.Context, name string, tail int) error {
	c, err := a.client(ctx)
	if err != nil {
		return err
	}
	stream, err := c.Console(ctx, name, tail)
	if err != nil {
		return err
	}
	defer stream.Close()
	fd := int(os.Stdin.Fd())
	restore := func() {}
	if term.IsTerminal(fd) {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("raw mode for this terminal: %w", err)
		}
		restore = func() { term.Restore(fd, old) }
	}
	defer restore()
	fmt.Fprintf(a.errOut, "==> Connected to %s's serial console; Ctrl-] detaches (the VM keeps running)\r\n", name)

	out := make(chan error, 1)
	go func() {
		_, err := io.Copy(a.out, stream)
		out <- err
	}()
	in := make(chan error, 1)
	go func() { in <- copyUntilDetach(stream, os.Stdin) }()

	select {
	case err := <-in:
		stream.Close()
		restore()
		if err != nil {
			return fmt.Errorf("console of %q: %w", name, err)
		}
		fmt.Fprintf(a.errOut, "\r\n==> Detached from %s; it keeps running\n", name)
		return nil
	case err := <-out: // the VM stopped, or the host went away
		restore()
		v, gerr := c.Get(context.WithoutCancel(ctx), name)
		if gerr == nil && !v.State.Active() {
			fmt.Fprintf(a.errOut, "\r\n==> %s is %s: its console closed\n", name, v.State)
			return nil
		}
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("console of %q ended: %w (is the fvm host still running? `fvm status %s`)", name, err, name)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyUntilDetach copies in to w until the detach key (the bytes before it
// are sent) or the end of in; both are a detach, and return nil.
func copyUntilDetach(w io.Writer, in io.Reader) error {
	buf := make([]byte, 4096)
	for {
		n, err := in.Read(buf)
		chunk := buf[:n]
		i := bytes.IndexByte(chunk, detachKey)
		if i >= 0 {
			chunk = chunk[:i]
		}
		if len(chunk) > 0 {
			if _, werr := w.Write(chunk); werr != nil {
				return werr
			}
		}
		if i >= 0 || errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
