package stream

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProcess is a command that copies stdin to stdout (and a marker to
// stderr), records resizes and signals, and exits with status once stdin ends
// or a signal asks it to.
type fakeProcess struct {
	stdinR  *io.PipeReader
	stdinW  *io.PipeWriter
	outR    *io.PipeReader
	outW    *io.PipeWriter
	errR    *io.PipeReader
	errW    *io.PipeWriter
	status  int
	mu      sync.Mutex
	sizes   [][2]int
	signals []string
	killed  chan struct{}
	done    chan struct{}
	closed  sync.Once
}

func newFakeProcess(status int) *fakeProcess {
	p := &fakeProcess{status: status, killed: make(chan struct{}), done: make(chan struct{})}
	p.stdinR, p.stdinW = io.Pipe()
	p.outR, p.outW = io.Pipe()
	p.errR, p.errW = io.Pipe()
	go func() {
		io.Copy(p.outW, p.stdinR) // until stdin EOF, or Close
		p.errW.Write([]byte("stderr-marker"))
		p.outW.Close()
		p.errW.Close()
		close(p.done)
	}()
	return p
}

func (p *fakeProcess) Stdin() io.WriteCloser { return p.stdinW }
func (p *fakeProcess) Stdout() io.Reader     { return p.outR }
func (p *fakeProcess) Stderr() io.Reader     { return p.errR }
func (p *fakeProcess) Resize(c, r int) error {
	p.mu.Lock()
	p.sizes = append(p.sizes, [2]int{c, r})
	p.mu.Unlock()
	return nil
}
func (p *fakeProcess) Signal(s string) error {
	p.mu.Lock()
	p.signals = append(p.signals, s)
	p.mu.Unlock()
	if s == "INT" || s == "KILL" {
		p.status = 130
		p.stdinR.CloseWithError(errors.New("signalled"))
	}
	return nil
}
func (p *fakeProcess) Wait() (int, error) { <-p.done; return p.status, nil }
func (p *fakeProcess) Close() error {
	p.closed.Do(func() { close(p.killed); p.stdinR.CloseWithError(io.ErrClosedPipe) })
	return nil
}

// pair serves p on one end of a Unix socket pair and returns the client's Conn.
func pair(t *testing.T, p Process) (*Conn, chan error) {
	t.Helper()
	a, b := unixPair(t)
	served := make(chan error, 1)
	go func() { served <- Serve(New(a, nil), p) }()
	return New(b, nil), served
}

func unixPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", t.TempDir()+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	b, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-acc
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestFramesRoundTrip(t *testing.T) {
	a, b := unixPair(t)
	ca, cb := New(a, nil), New(b, nil)
	big := make([]byte, MaxPayload+12345) // split into two frames by the Writer
	rand.Read(big)
	go func() {
		ca.Write(Stdin, []byte("x"))
		ca.Write(StdinEOF, nil)
		ca.Write(Resize, EncodeSize(132, 43))
		ca.Writer(Stdout).Write(big)
		ca.Write(Exit, EncodeExit(-3))
	}()
	want := []struct {
		k Kind
		n int
	}{{Stdin, 1}, {StdinEOF, 0}, {Resize, 4}, {Stdout, MaxPayload}, {Stdout, 12345}, {Exit, 4}}
	var got []byte
	for i, w := range want {
		k, p, err := cb.Read()
		if err != nil || k != w.k || len(p) != w.n {
			t.Fatalf("frame %d: %c %d %v, want %c %d", i, k, len(p), err, w.k, w.n)
		}
		switch k {
		case Stdout:
			got = append(got, p...)
		case Resize:
			if c, r, err := DecodeSize(p); c != 132 || r != 43 || err != nil {
				t.Errorf("size %d %d %v", c, r, err)
			}
		case Exit:
			if s, err := DecodeExit(p); s != -3 || err != nil {
				t.Errorf("exit %d %v", s, err)
			}
		}
	}
	if !bytes.Equal(got, big) {
		t.Error("large payload changed in transit")
	}
	if err := ca.Write(Stdout, make([]byte, MaxPayload+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized write: %v", err)
	}
}

func TestReadRejectsBadFrames(t *testing.T) {
	for name, raw := range map[string][]byte{
		"truncated header":  {'o', 0, 0},
		"truncated payload": {'o', 0, 0, 0, 9, 'a'},
		"too large":         {'o', 0xff, 0xff, 0xff, 0xff},
	} {
		a, b := unixPair(t)
		a.Write(raw)
		a.Close()
		_, _, err := New(b, nil).Read()
		if err == nil || err == io.EOF || !(strings.Contains(err.Error(), "truncated") || errors.Is(err, ErrFrameTooLarge)) {
			t.Errorf("%s: err %v, want a truncation or size error", name, err)
		}
	}
	if _, _, err := New(&closedRW{}, nil).Read(); !errors.Is(err, io.EOF) {
		t.Errorf("clean end between frames: %v, want EOF", err)
	}
}

type closedRW struct{}

func (closedRW) Read([]byte) (int, error)    { return 0, io.EOF }
func (closedRW) Write(p []byte) (int, error) { return len(p), nil }
func (closedRW) Close() error                { return nil }

// TestRunLargeStdinRoundTrip: 10 MB through stdin and back, byte-identical,
// stdout and stderr apart, the exit status last.
func TestRunLargeStdinRoundTrip(t *testing.T) {
	p := newFakeProcess(7)
	c, served := pair(t, p)
	data := make([]byte, 10<<20)
	rand.Read(data)
	var out, errOut bytes.Buffer
	status, err := c.Run(bytes.NewReader(data), &out, &errOut)
	if err != nil || status != 7 {
		t.Fatalf("status %d, %v", status, err)
	}
	if sha256.Sum256(out.Bytes()) != sha256.Sum256(data) {
		t.Fatalf("stdout (%d bytes) is not stdin (%d bytes)", out.Len(), len(data))
	}
	if errOut.String() != "stderr-marker" {
		t.Fatalf("stderr %q", errOut.String())
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestResizeAndSignal(t *testing.T) {
	p := newFakeProcess(0)
	c, _ := pair(t, p)
	stdin, stdinW := io.Pipe() // never ends on its own, like a terminal
	defer stdinW.Close()
	res := make(chan int, 1)
	go func() { s, _ := c.Run(stdin, io.Discard, io.Discard); res <- s }()
	c.Write(Resize, EncodeSize(100, 30))
	c.Write(Signal, []byte("INT"))
	select {
	case s := <-res:
		if s != 130 {
			t.Fatalf("status %d, want 130 after INT", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the command ended")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sizes) != 1 || p.sizes[0] != [2]int{100, 30} || len(p.signals) != 1 || p.signals[0] != "INT" {
		t.Fatalf("sizes %v signals %v", p.sizes, p.signals)
	}
}

// TestClientGoneKillsCommand: a client that vanishes takes its command with it.
func TestClientGoneKillsCommand(t *testing.T) {
	p := newFakeProcess(0)
	c, served := pair(t, p)
	c.Write(Stdin, []byte("partial"))
	c.Close()
	select {
	case <-p.killed:
	case <-time.After(5 * time.Second):
		t.Fatal("command kept running after its client went away")
	}
	<-served
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.signals) == 0 || p.signals[0] != "KILL" {
		t.Errorf("signals %v, want KILL", p.signals)
	}
}

func TestHostGone(t *testing.T) {
	a, b := unixPair(t)
	go func() {
		New(a, nil).Write(Stdout, []byte("half"))
		a.Close()
	}()
	var out bytes.Buffer
	if _, err := New(b, nil).Run(nil, &out, nil); !errors.Is(err, ErrHostGone) || out.String() != "half" {
		t.Fatalf("err %v out %q", err, out.String())
	}
	a2, b2 := unixPair(t)
	go New(a2, nil).Write(Error, []byte("vm \"x\" stopped"))
	if _, err := New(b2, nil).Run(nil, nil, nil); err == nil || err.Error() != `vm "x" stopped` {
		t.Fatalf("error frame: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte{'o', 0, 0, 0, 1, 'a', 'x', 0, 0, 0, 4, 0, 0, 0, 0})
	f.Add([]byte{'r', 0, 0, 0, 4, 0, 80, 0, 24})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := New(nopCloser{bytes.NewReader(b)}, nil)
		for i := 0; i < 100; i++ {
			k, p, err := c.Read()
			if err != nil {
				return
			}
			if len(p) > MaxPayload {
				t.Fatalf("payload of %d bytes", len(p))
			}
			switch k {
			case Resize:
				DecodeSize(p)
			case Exit:
				DecodeExit(p)
			}
		}
	})
}

type nopCloser struct{ io.Reader }

func (nopCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopCloser) Close() error                { return nil }
