package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/api/stream"
	"github.com/fvmhq/fvm/core/remote"
	"github.com/fvmhq/fvm/core/sshx"
)

// remote runs command in the VM (its login shell when empty) through the host,
// which holds the VM's SSH connection, wired to this process's terminal, and
// returns the command's exit status. With a terminal on stdin it gets a PTY
// (raw mode here, resizes forwarded); otherwise stdin, stdout and stderr are
// plain streams and Ctrl-C is sent to the remote command as SIGINT (twice:
// SIGKILL). A host too old to stream is bypassed with a direct SSH connection.
func (a *app) remote(ctx context.Context, c *client.Client, name, command string) (int, error) {
	in := stdinFile()
	fd := int(in.Fd())
	tty := term.IsTerminal(fd)
	req := api.ExecRequest{Command: command, TTY: tty}
	if tty {
		req.Term = os.Getenv("TERM")
		if req.Term == "" {
			req.Term = "xterm-256color"
		}
		if w, h, err := term.GetSize(fd); err == nil {
			req.Cols, req.Rows = w, h
		}
	}
	sc, err := c.Exec(ctx, name, req)
	if errors.Is(err, client.ErrOlderHost) {
		t, err := sshTarget(ctx, c, name)
		if err != nil {
			return 0, err
		}
		return a.session(ctx, t, command)
	}
	if err != nil {
		return 0, err
	}
	defer sc.Close()
	if tty {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return 0, fmt.Errorf("terminal raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		stop := sshx.WatchResize(fd, func(w, h int) { sc.Write(stream.Resize, stream.EncodeSize(w, h)) })
		defer stop()
	} else {
		stop := forwardInterrupts(sc)
		defer stop()
	}
	code, err := sc.Run(in, a.out, a.errOut)
	var lost *remote.LostError
	if err != nil && c.Remote() && errors.As(err, &lost) {
		// The SSH connection to the host's machine went (ssh killed, the
		// network): the VM and the host there did not.
		return code, fmt.Errorf("%s: %s; %s keeps running there, and how the command ended is unknown: run it again", name, lost.Error(), name)
	}
	return code, err
}

// forwardInterrupts sends Ctrl-C (and SIGTERM) to the remote command: the
// first as itself, a second Ctrl-C as SIGKILL, as a user hammering Ctrl-C means.
func forwardInterrupts(sc *stream.Conn) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		ints := 0
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				name := map[os.Signal]string{os.Interrupt: "INT", syscall.SIGTERM: "TERM", syscall.SIGHUP: "HUP"}[s]
				if s == os.Interrupt {
					if ints++; ints > 1 {
						name = "KILL"
					}
				}
				sc.Write(stream.Signal, []byte(name))
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
