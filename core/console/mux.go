package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sync"
	"time"
)

// The hypervisor serves a VM's serial port on a Unix socket to one client at
// a time and logs everything the guest writes (attached or not) to the serial
// log. A Mux shares that port among any number of sessions: input from every
// session goes to the socket; output is read from the log, which is complete
// and ordered, so that a session can start with earlier output (the boot log,
// the login prompt) and no two sessions ever see different things. Bytes
// arriving on the socket only wake the sessions up; they are drained, because
// a hypervisor whose client stops reading stalls the guest's serial port.
//
// The Mux holds the socket only while sessions are attached: detached, the
// hypervisor is back to logging alone, and the guest never waits on the host.

// pollInterval bounds how late a session sees output: the hypervisor writes
// the log after the socket, so a wake-up can come just before the bytes do.
const pollInterval = 50 * time.Millisecond

// writeTimeout bounds a write to the serial port: a guest that reads nothing
// (no getty) fills the socket, and a client must not hang on it.
const writeTimeout = 10 * time.Second

// maxTail bounds how far back a session's earlier output reaches, whatever
// the number of lines asked for.
const maxTail = 1 << 20

// ErrClosed means the Mux was closed: the VM stopped.
var ErrClosed = errors.New("the serial console is closed: the VM stopped")

// LogFile is the serial log as a Mux reads it (*os.File is one).
type LogFile interface {
	io.ReadSeekCloser
	io.ReaderAt
	Stat() (fs.FileInfo, error)
}

// Mux multiplexes one VM's serial port; NewMux makes one per run of the VM.
type Mux struct {
	dial    Dialer                  // the serial port
	openLog func() (LogFile, error) // the serial log

	mu       sync.Mutex
	conn     net.Conn // to the hypervisor, while sessions are attached
	sessions map[*Session]struct{}
	wake     chan struct{} // closed and replaced when output arrives
	closed   bool
	done     chan struct{} // closed by Close

	wmu sync.Mutex // one write at a time on conn
}

// NewMux multiplexes the serial port that dial connects to, whose output the
// hypervisor keeps in the log that openLog opens. It connects when the first
// session attaches.
func NewMux(dial Dialer, openLog func() (LogFile, error)) *Mux {
	return &Mux{dial: dial, openLog: openLog, sessions: map[*Session]struct{}{},
		wake: make(chan struct{}), done: make(chan struct{})}
}

// Attach starts a session. Its output starts tail lines before the end of the
// log (0: only what comes next; negative: the whole log, up to 1 MiB back).
func (m *Mux) Attach(tail int) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	f, err := m.openLog()
	if err != nil {
		return nil, fmt.Errorf("serial log: %w", err)
	}
	if m.conn == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := m.dial(ctx)
		cancel()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("serial console: %w", err)
		}
		m.conn = c
		go m.drain(c)
	}
	off, err := tailOffset(f, tail)
	if err != nil {
		f.Close()
		m.release()
		return nil, fmt.Errorf("serial log: %w", err)
	}
	replay, err := earlierOutput(f, off)
	if err != nil {
		f.Close()
		m.release()
		return nil, fmt.Errorf("serial log: %w", err)
	}
	s := &Session{m: m, f: f, off: off + int64(len(replay)), replay: stripQueries(replay), done: make(chan struct{})}
	m.sessions[s] = struct{}{}
	return s, nil
}

// Attached is the number of sessions now.
func (m *Mux) Attached() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// Close ends every session (after it has read what is left in the log) and
// lets go of the socket. The VM is not touched.
func (m *Mux) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	close(m.done)
	if m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
	return nil
}

// drain reads and drops what the hypervisor sends (the log has it), waking
// the sessions up, until the connection ends.
func (m *Mux) drain(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		_, err := c.Read(buf)
		m.broadcast()
		if err != nil {
			break
		}
	}
	m.mu.Lock()
	if m.conn == c {
		m.conn = nil // the hypervisor hung up (it is going away)
	}
	m.mu.Unlock()
	c.Close()
}

func (m *Mux) broadcast() {
	m.mu.Lock()
	close(m.wake)
	m.wake = make(chan struct{})
	m.mu.Unlock()
}

func (m *Mux) waiter() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wake
}

// release closes the socket when no session is left; m.mu must be held.
func (m *Mux) release() {
	if len(m.sessions) == 0 && m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
}

func (m *Mux) write(p []byte) (int, error) {
	m.mu.Lock()
	c := m.conn
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	if c == nil {
		return 0, errors.New("the serial console is not connected: the VM is going away")
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	n, err := c.Write(p)
	if err != nil {
		return n, fmt.Errorf("serial console: %w", err)
	}
	return n, nil
}

// Session is one client of a Mux: Read is the guest's output, Write its input.
// Close detaches it; the VM goes on.
type Session struct {
	m      *Mux
	f      LogFile
	off    int64
	replay []byte // earlier output not yet read, without terminal queries
	rmu    sync.Mutex
	once   sync.Once
	done   chan struct{}
}

// Read returns the guest's next output, waiting for it; io.EOF once the
// session is closed, or the Mux is and the log is read to its end.
func (s *Session) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.replay) > 0 {
		select {
		case <-s.done:
			return 0, io.EOF
		default:
		}
		n := copy(p, s.replay)
		s.replay = s.replay[n:]
		return n, nil
	}
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	for {
		wake := s.m.waiter()
		select {
		case <-s.done:
			return 0, io.EOF
		default:
		}
		n, err := s.readLog(p)
		if n > 0 || err != nil {
			return n, err
		}
		select {
		case <-s.m.done:
			if n, err := s.readLog(p); n > 0 || err != nil {
				return n, err
			}
			return 0, io.EOF
		default:
		}
		t.Reset(pollInterval)
		select {
		case <-s.done:
			return 0, io.EOF
		case <-s.m.done:
		case <-wake:
		case <-t.C:
		}
	}
}

// earlierOutput is the log from off to its current end (at most maxTail bytes
// away: tailOffset's bound), which a session replays before live output.
func earlierOutput(f LogFile, off int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil || st.Size() <= off {
		return nil, err
	}
	b := make([]byte, st.Size()-off)
	n, err := f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// readLog reads from the log at the session's offset; a log that shrank
// (truncated by hand) is read again from its start.
func (s *Session) readLog(p []byte) (int, error) {
	n, err := s.f.ReadAt(p, s.off)
	s.off += int64(n)
	if n > 0 {
		return n, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("serial log: %w", err)
	}
	if st, err := s.f.Stat(); err == nil && st.Size() < s.off {
		s.off = 0
	}
	return 0, nil
}

// Write sends input to the guest's serial port.
func (s *Session) Write(p []byte) (int, error) {
	select {
	case <-s.done:
		return 0, io.ErrClosedPipe
	default:
	}
	return s.m.write(p)
}

// Close detaches the session.
func (s *Session) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.m.mu.Lock()
		delete(s.m.sessions, s)
		s.m.release()
		s.m.mu.Unlock()
		s.rmu.Lock() // a Read in progress returns first
		s.f.Close()
		s.rmu.Unlock()
	})
	return nil
}
