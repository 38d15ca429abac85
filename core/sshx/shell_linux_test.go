package sshx

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal pair, so the test drives Shell's terminal path.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pts: %v", err)
	}
	// Master first: it makes a pending read on the slave fail, ending Shell's stdin copy.
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestShellWithTerminal(t *testing.T) {
	m, pts := openPTY(t)
	go io.Copy(io.Discard, m) // keep the terminal's output drained
	fd := int(pts.Fd())
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: 100, Row: 40}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TERM", "xterm-test")

	s := newTestServer(t)
	c := dial(t, s)
	var out syncBuffer
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := c.Shell(context.Background(), pts, &out, io.Discard, "")
		done <- result{code, err}
	}()

	select {
	case p := <-s.PtyReqs:
		if p.Term != "xterm-test" || p.Cols != 100 || p.Rows != 40 {
			t.Errorf("pty-req %+v, want xterm-test 100x40", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pty-req")
	}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: 120, Row: 50}); err != nil {
		t.Fatal(err)
	}
	// The terminal is not our controlling one, so raise SIGWINCH ourselves; repeat
	// in case Shell has not subscribed yet.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	var r result
wait:
	for {
		select {
		case r = <-done:
			break wait
		case <-tick.C:
			syscall.Kill(os.Getpid(), syscall.SIGWINCH)
		case <-deadline:
			t.Fatalf("shell did not end; output %q", out.String())
		}
	}
	if r.err != nil || r.code != 3 {
		t.Fatalf("code %d err %v", r.code, r.err)
	}
	if got := out.String(); !strings.Contains(got, "pty xterm-test 100x40\n") || !strings.Contains(got, "resized 120x50\n") {
		t.Errorf("output %q", got)
	}
	after, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Error("terminal mode not restored after the shell")
	}
}
