package stream

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// Process is a command running in a VM, as the host holds it.
type Process interface {
	Stdin() io.WriteCloser
	Stdout() io.Reader
	Stderr() io.Reader // nothing arrives here with a terminal: the PTY merges it into stdout
	Resize(cols, rows int) error
	Signal(name string) error
	// Wait returns the exit status once the command ended (128+N for signal N,
	// 255 when it ended without a status) and its output was read.
	Wait() (int, error)
	Close() error
}

// Serve is the host's side: it pumps frames between c and p until p exits,
// sends the exit status (or the error) as the last frame and closes c. A client
// that goes away (its connection ends) takes the command with it: SIGKILL, as
// the SSH client did when it was interrupted.
func Serve(c *Conn, p Process) error {
	exited := make(chan struct{})
	defer c.Close()
	defer p.Close()
	defer close(exited)
	go func() {
		serveInput(c, p) // returns when the client's side ends, or ours is closed
		select {
		case <-exited:
		default: // the client went away while the command runs
			p.Signal("KILL")
			p.Close()
		}
	}()
	var wg sync.WaitGroup
	for _, o := range []struct {
		k Kind
		r io.Reader
	}{{Stdout, p.Stdout()}, {Stderr, p.Stderr()}} {
		if o.r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(c.Writer(o.k), o.r)
		}()
	}
	wg.Wait()
	status, err := p.Wait()
	if err != nil {
		c.Write(Error, []byte(err.Error()))
		return err
	}
	return c.Write(Exit, EncodeExit(status))
}

// serveInput applies the client's frames to p until the client goes away.
func serveInput(c *Conn, p Process) error {
	in := p.Stdin()
	for {
		k, b, err := c.Read()
		if err != nil {
			return err
		}
		switch k {
		case Stdin:
			if in != nil {
				if _, err := in.Write(b); err != nil {
					in = nil // the command closed its stdin: drop the rest, as a pipe would
				}
			}
		case StdinEOF:
			if in != nil {
				in.Close()
				in = nil
			}
		case Resize:
			if cols, rows, err := DecodeSize(b); err == nil {
				p.Resize(cols, rows)
			}
		case Signal:
			p.Signal(string(b))
		}
	}
}

// ErrHostGone means the stream ended without an exit status: the host or the
// VM went away mid-command.
var ErrHostGone = errors.New("the connection to the fvm host ended before the command did")

// Run is the client's side: it sends stdin (then StdinEOF at its end), writes
// stdout and stderr frames to their writers and returns the exit status. It
// returns when the host sends the status, without waiting for stdin (which, on
// a terminal, never ends). Resize and Signal frames may be sent meanwhile with
// Write.
func (c *Conn) Run(stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if stdin != nil {
		go func() {
			io.Copy(c.Writer(Stdin), stdin)
			c.Write(StdinEOF, nil)
		}()
	} else {
		c.Write(StdinEOF, nil)
	}
	for {
		k, b, err := c.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return -1, ErrHostGone
			}
			return -1, fmt.Errorf("%w: %w", ErrHostGone, err)
		}
		switch k {
		case Stdout:
			if stdout != nil {
				stdout.Write(b)
			}
		case Stderr:
			if stderr != nil {
				stderr.Write(b)
			}
		case Exit:
			return DecodeExit(b)
		case Error:
			return -1, errors.New(string(b))
		}
	}
}

// Pipe turns the stream into a byte pipe, for a subsystem such as SFTP that
// speaks over stdin and stdout: reads return the remote stdout, writes go to
// its stdin, Close sends EOF. Stderr is dropped; the exit status ends reads
// (io.EOF for 0, an error otherwise).
func (c *Conn) Pipe() (io.Reader, io.WriteCloser) {
	pr, pw := io.Pipe()
	go func() {
		for {
			k, b, err := c.Read()
			if err != nil {
				pw.CloseWithError(fmt.Errorf("%w: %v", ErrHostGone, err))
				return
			}
			switch k {
			case Stdout:
				if _, err := pw.Write(b); err != nil {
					return
				}
			case Exit:
				st, _ := DecodeExit(b)
				if st != 0 {
					pw.CloseWithError(fmt.Errorf("the remote side exited with status %d", st))
				} else {
					pw.Close()
				}
				return
			case Error:
				pw.CloseWithError(errors.New(string(b)))
				return
			}
		}
	}()
	return pr, &stdinWriter{c}
}

type stdinWriter struct{ c *Conn }

func (w *stdinWriter) Write(p []byte) (int, error) { return w.c.Writer(Stdin).Write(p) }
func (w *stdinWriter) Close() error                { return w.c.Write(StdinEOF, nil) }
