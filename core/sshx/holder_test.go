package sshx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func runVia(t *testing.T, h *Holder, cmd string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := h.Start(ctx, ProcessOptions{Command: cmd})
	if err != nil {
		t.Fatalf("start %q: %v", cmd, err)
	}
	p.Stdin().Close()
	var out bytes.Buffer
	io.Copy(&out, p.Stdout())
	status, err := p.Wait()
	if err != nil {
		t.Fatalf("wait %q: %v", cmd, err)
	}
	p.Close()
	return out.String(), status
}

func TestHolderReusesOneConnection(t *testing.T) {
	s := newTestServer(t)
	s.mode.Store(modeDrop) // booting: the port answers, sshd does not yet
	h := Hold(s.Target(), HolderOptions{})
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if err := h.Ready(ctx); err == nil {
		t.Fatal("ready before sshd answers")
	}
	cancel()
	s.mode.Store(modeSSH)
	for i := 0; i < 5; i++ {
		if out, st := runVia(t, h, "echo hi"); out != "hi\n" || st != 0 {
			t.Fatalf("run %d: %q %d", i, out, st)
		}
	}
	if out, st := runVia(t, h, "fail 9"); st != 9 || out != "" {
		t.Fatalf("fail 9: %q %d", out, st)
	}
	if n := s.Handshks.Load(); n != 1 {
		t.Fatalf("%d handshakes for 6 commands, want 1", n)
	}
}

// TestHolderReconnects: sshd restarted under the host → the next command
// reconnects (same pinned key) and works.
func TestHolderReconnects(t *testing.T) {
	s := newTestServer(t)
	var mu sync.Mutex
	var readies []bool
	h := Hold(s.Target(), HolderOptions{OnReady: func(re bool) { mu.Lock(); readies = append(readies, re); mu.Unlock() }})
	defer h.Close()
	runVia(t, h, "echo a")
	s.DropAll()
	if out, _ := runVia(t, h, "echo b"); out != "b\n" {
		t.Fatalf("after sshd restart: %q", out)
	}
	if h.Connects() != 2 || s.Handshks.Load() != 2 {
		t.Fatalf("connects %d handshakes %d, want 2 and 2", h.Connects(), s.Handshks.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(readies) != 2 || readies[0] || !readies[1] {
		t.Fatalf("OnReady calls %v", readies)
	}
}

// TestHolderKeepaliveNoticesDeadPeer: a peer that stops answering (a frozen
// guest) is noticed by the keepalive probe, and the Holder reconnects.
func TestHolderKeepaliveNoticesDeadPeer(t *testing.T) {
	s := newTestServer(t)
	h := Hold(s.Target(), HolderOptions{Keepalive: 50 * time.Millisecond, KeepaliveTimeout: 200 * time.Millisecond})
	defer h.Close()
	runVia(t, h, "echo a")
	s.DropAll()
	deadline := time.Now().Add(5 * time.Second)
	for h.Connects() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if h.Connects() < 2 {
		t.Fatal("the lost connection was not replaced by itself")
	}
}

// TestHolderRefusesAnotherHostKey: on reconnect the guest offers another host
// key: refused loudly, never accepted, every request fails with the mismatch.
func TestHolderRefusesAnotherHostKey(t *testing.T) {
	s := newTestServer(t)
	fatal := make(chan error, 1)
	h := Hold(s.Target(), HolderOptions{OnFatal: func(err error) { fatal <- err }})
	defer h.Close()
	runVia(t, h, "echo a")
	s.SwapHostKey()
	s.DropAll()
	select {
	case err := <-fatal:
		if !errors.Is(err, ErrHostKeyMismatch) {
			t.Fatalf("fatal %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no loud refusal of the new host key")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := h.Start(ctx, ProcessOptions{Command: "echo b"}); !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("start after mismatch: %v", err)
	}
}

// TestHolderSessionLimitFallback: the guest's sshd allows 2 sessions per
// connection; 5 at once still all run, on a second and third connection.
func TestHolderSessionLimitFallback(t *testing.T) {
	s := newTestServer(t)
	s.MaxSessions = 2
	h := Hold(s.Target(), HolderOptions{})
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var procs []*Process
	for i := 0; i < 5; i++ {
		p, err := h.Start(ctx, ProcessOptions{Command: "cat"}) // runs until stdin ends
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		procs = append(procs, p)
	}
	if n := h.Conns(); n != 3 {
		t.Errorf("%d connections for 5 sessions at 2 per connection, want 3", n)
	}
	for i, p := range procs {
		io.WriteString(p.Stdin(), "x")
		p.Stdin().Close()
		b, _ := io.ReadAll(p.Stdout())
		if st, err := p.Wait(); err != nil || st != 0 || string(b) != "x" {
			t.Errorf("session %d: %q %d %v", i, b, st, err)
		}
		p.Close()
	}
	h2 := Hold(s.Target(), HolderOptions{MaxConns: 1})
	defer h2.Close()
	var open []*Process
	for i := 0; i < 2; i++ {
		p, err := h2.Start(ctx, ProcessOptions{Command: "cat"})
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, p)
	}
	if _, err := h2.Start(ctx, ProcessOptions{Command: "cat"}); err == nil || !strings.Contains(err.Error(), "refuses more sessions") {
		t.Fatalf("over every limit: %v", err)
	}
	for _, p := range open {
		p.Close()
	}
}

func TestHolderClose(t *testing.T) {
	s := newTestServer(t)
	h := Hold(s.Target(), HolderOptions{})
	runVia(t, h, "echo a")
	h.Close()
	if err := h.Ready(context.Background()); !errors.Is(err, ErrHolderClosed) {
		t.Fatalf("ready after close: %v", err)
	}
	if _, err := h.Start(context.Background(), ProcessOptions{Command: "echo"}); !errors.Is(err, ErrHolderClosed) {
		t.Fatalf("start after close: %v", err)
	}
}

func TestProcessSignalResizeTTY(t *testing.T) {
	s := newTestServer(t)
	h := Hold(s.Target(), HolderOptions{})
	defer h.Close()
	ctx := context.Background()
	p, err := h.Start(ctx, ProcessOptions{TTY: true, Term: "vt100", Cols: 90, Rows: 20})
	if err != nil {
		t.Fatal(err)
	}
	if pi := <-s.PtyReqs; pi.Term != "vt100" || pi.Cols != 90 || pi.Rows != 20 {
		t.Fatalf("pty %+v", pi)
	}
	p.Resize(120, 40)
	if r := <-s.Resizes; r.Cols != 120 || r.Rows != 40 {
		t.Fatalf("resize %+v", r)
	}
	out, _ := io.ReadAll(p.Stdout())
	if st, _ := p.Wait(); st != 3 || !strings.Contains(string(out), "resized 120x40") {
		t.Fatalf("shell %q %d", out, st)
	}
	p.Close()
	p, err = h.Start(ctx, ProcessOptions{Command: "hang"})
	if err != nil {
		t.Fatal(err)
	}
	p.Signal("INT")
	if sig := <-s.Signals; sig != "INT" {
		t.Fatalf("signal %q", sig)
	}
	io.Copy(io.Discard, p.Stdout())
	if st, _ := p.Wait(); st != 130 {
		t.Fatalf("status after INT %d, want 130", st)
	}
	p.Close()
}

// TestHolderSession: with Session, a connection counts as ready only once a
// command ran on it, whatever its status (the test server knows no `true`);
// a checked Initial connection is ready at once.
func TestHolderSession(t *testing.T) {
	s := newTestServer(t)
	h := Hold(s.Target(), HolderOptions{Session: true})
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.Execs.Load(); n != 1 {
		t.Fatalf("%d commands before ready, want 1", n)
	}
	c, err := Dial(ctx, s.Target())
	if err != nil {
		t.Fatal(err)
	}
	h2 := Hold(s.Target(), HolderOptions{Session: true, Initial: c})
	defer h2.Close()
	if err := h2.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.Execs.Load(); n != 1 {
		t.Fatalf("a command ran on the checked initial connection (%d)", n)
	}
}

// TestHolderGateUp: a gate that says the guest is up (its agent answered)
// makes the first attempt wait for an sshd slow to say its version, in one
// attempt; a gate that could not tell leaves the usual timeout, and a server
// silent past it is given up on (and so served an attempt nobody waits for).
func TestHolderGateUp(t *testing.T) {
	for _, up := range []bool{true, false} {
		s := newTestServer(t)
		s.SlowToSpeak.Store(int64(time.Second))
		tg := s.Target()
		tg.Timeout = 300 * time.Millisecond
		var failed int
		var mu sync.Mutex
		h := Hold(tg, HolderOptions{
			Gate: func(context.Context) bool { return up },
			OnAttempt: func(error) {
				mu.Lock()
				failed++
				mu.Unlock()
				s.SlowToSpeak.Store(0)
			},
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := h.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		h.Close()
		mu.Lock()
		if up && failed != 0 {
			t.Errorf("guest up: %d failed attempts before the slow sshd answered, want 0", failed)
		}
		if !up && failed == 0 {
			t.Error("guest not known up: a server silent past the timeout was waited for")
		}
		mu.Unlock()
	}
}
