package sshx

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"
)

// Shell runs cmd, or the login shell when cmd is empty, wired to the caller's
// terminal. When stdin is a terminal it asks for a PTY (TERM from the environment,
// the terminal's size, resizes forwarded) and puts the local terminal in raw mode
// until the session ends; otherwise it runs without a PTY, like `ssh host < file`.
// It returns the remote exit status as Exec does.
func (c *Client) Shell(ctx context.Context, stdin *os.File, stdout, stderr io.Writer, cmd string) (int, error) {
	s, err := c.c.NewSession()
	if err != nil {
		return -1, fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	s.Stdout, s.Stderr = orDiscard(stdout), orDiscard(stderr)

	var in io.Reader
	if stdin != nil {
		in = stdin
	}
	if stdin != nil && term.IsTerminal(int(stdin.Fd())) {
		fd := int(stdin.Fd())
		w, h, err := term.GetSize(fd)
		if err != nil {
			w, h = 80, 24
		}
		termName := os.Getenv("TERM")
		if termName == "" {
			termName = "xterm-256color"
		}
		modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 14400, ssh.TTY_OP_OSPEED: 14400}
		if err := s.RequestPty(termName, h, w, modes); err != nil {
			return -1, fmt.Errorf("ssh pty: %w", err)
		}
		old, err := term.MakeRaw(fd)
		if err != nil {
			return -1, fmt.Errorf("terminal raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		stopResize := WatchResize(fd, func(w, h int) { s.WindowChange(h, w) })
		defer stopResize()
	}
	if err := feedStdin(s, in); err != nil {
		return -1, err
	}
	if cmd == "" {
		err = s.Shell()
	} else {
		err = s.Start(cmd)
	}
	if err != nil {
		return -1, fmt.Errorf("ssh shell: %w", err)
	}
	return wait(ctx, s)
}
