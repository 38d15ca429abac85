package sshx

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// ProcessOptions say what to run in a session and how.
type ProcessOptions struct {
	Command   string // a shell command line; "" runs the login shell
	Subsystem string // instead of a command, e.g. "sftp"
	TTY       bool   // ask for a PTY (stderr then arrives merged into stdout)
	Term      string // TERM for the PTY (xterm-256color when empty)
	Cols      int
	Rows      int
}

// Process is a command running in an SSH session; it implements the host's
// side of api/stream (stream.Process).
type Process struct {
	s      *ssh.Session
	stdin  io.WriteCloser
	stdout io.Reader
	stderr io.Reader
	close  sync.Once
}

// StartProcess opens a session on conn and starts opts in it.
func StartProcess(conn *ssh.Client, opts ProcessOptions) (*Process, error) {
	s, err := conn.NewSession()
	if err != nil {
		return nil, err
	}
	p, err := startIn(s, opts)
	if err != nil {
		s.Close()
		return nil, &StartError{err}
	}
	return p, nil
}

// StartError means the session opened but the command (or its PTY) did not start.
type StartError struct{ Err error }

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

func startIn(s *ssh.Session, opts ProcessOptions) (*Process, error) {
	p := &Process{s: s}
	var err error
	if p.stdin, err = s.StdinPipe(); err != nil {
		return nil, fmt.Errorf("ssh stdin: %w", err)
	}
	if p.stdout, err = s.StdoutPipe(); err != nil {
		return nil, fmt.Errorf("ssh stdout: %w", err)
	}
	if p.stderr, err = s.StderrPipe(); err != nil {
		return nil, fmt.Errorf("ssh stderr: %w", err)
	}
	if opts.TTY {
		term := opts.Term
		if term == "" {
			term = "xterm-256color"
		}
		cols, rows := opts.Cols, opts.Rows
		if cols <= 0 || rows <= 0 {
			cols, rows = 80, 24
		}
		modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 14400, ssh.TTY_OP_OSPEED: 14400}
		if err := s.RequestPty(term, rows, cols, modes); err != nil {
			return nil, fmt.Errorf("ssh pty: %w", err)
		}
	}
	switch {
	case opts.Subsystem != "":
		err = s.RequestSubsystem(opts.Subsystem)
	case opts.Command == "":
		err = s.Shell()
	default:
		err = s.Start(opts.Command)
	}
	if err != nil {
		return nil, fmt.Errorf("ssh start %q: %w", opts.Command+opts.Subsystem, err)
	}
	return p, nil
}

func (p *Process) Stdin() io.WriteCloser { return p.stdin }
func (p *Process) Stdout() io.Reader     { return p.stdout }
func (p *Process) Stderr() io.Reader     { return p.stderr }

// Resize tells the PTY its new size.
func (p *Process) Resize(cols, rows int) error { return p.s.WindowChange(rows, cols) }

// Signal sends a signal ("INT", "TERM", "KILL", ...) to the remote command.
func (p *Process) Signal(name string) error { return p.s.Signal(ssh.Signal(name)) }

// Wait returns the exit status as Exec does (128+N for signal N, 255 when
// the session ended without a status).
func (p *Process) Wait() (int, error) { return exitCode(p.s.Wait()) }

// Close ends the session.
func (p *Process) Close() error {
	var err error
	p.close.Do(func() {
		err = p.s.Close()
		if errors.Is(err, io.EOF) {
			err = nil
		}
	})
	return err
}

// ShellQuote quotes s as one word for the remote shell (POSIX single quotes).
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
