package sshx

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func dial(t *testing.T, s *testServer) *Client {
	t.Helper()
	c, err := Dial(context.Background(), s.Target())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExec(t *testing.T) {
	s := newTestServer(t)
	c := dial(t, s)
	ctx := context.Background()
	for _, tc := range []struct {
		cmd, stdin     string
		code           int
		stdout, stderr string
	}{
		{cmd: "echo hello world", code: 0, stdout: "hello world\n"},
		{cmd: "fail 7", code: 7, stderr: "failed\n"},
		{cmd: "cat", stdin: "from stdin", code: 0, stdout: "from stdin"},
		{cmd: "killed", code: 128 + 9},
		{cmd: "vanish", code: 255},
		{cmd: "nope", code: 127, stderr: "nope: command not found\n"},
	} {
		var out, errb bytes.Buffer
		var in io.Reader
		if tc.stdin != "" {
			in = strings.NewReader(tc.stdin)
		}
		code, err := c.Exec(ctx, tc.cmd, in, &out, &errb)
		if err != nil {
			t.Fatalf("%s: %v", tc.cmd, err)
		}
		if code != tc.code || out.String() != tc.stdout || errb.String() != tc.stderr {
			t.Errorf("%s: code %d stdout %q stderr %q; want %d %q %q", tc.cmd, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestExecConcurrentSessions(t *testing.T) {
	s := newTestServer(t)
	c := dial(t, s)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			var out bytes.Buffer
			want := strings.Repeat("x", i+1)
			code, err := c.Exec(context.Background(), "echo "+want, nil, &out, nil)
			if err == nil && (code != 0 || out.String() != want+"\n") {
				err = errors.New("got " + out.String())
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestExecContextCancelKills(t *testing.T) {
	s := newTestServer(t)
	c := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exec(ctx, "hang", nil, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to give up", d)
	}
	select {
	case sig := <-s.Signals:
		if sig != "KILL" {
			t.Errorf("signal %q, want KILL", sig)
		}
	case <-time.After(2 * time.Second):
		t.Error("server saw no signal")
	}
}

func TestHostKeyMismatch(t *testing.T) {
	s := newTestServer(t)
	tg := s.Target()
	tg.HostKey = AuthorizedKey(newSigner(t).PublicKey())
	_, err := Dial(context.Background(), tg)
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("err = %v, want ErrHostKeyMismatch", err)
	}
	if !strings.Contains(err.Error(), "remove and recreate it") || !strings.Contains(err.Error(), "SHA256:") {
		t.Errorf("unhelpful message: %v", err)
	}

	// WaitReady must not retry it.
	var attempts atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err = WaitReady(ctx, tg, func(error) { attempts.Add(1) })
	if !errors.Is(err, ErrHostKeyMismatch) || attempts.Load() != 0 || time.Since(start) > time.Second {
		t.Fatalf("WaitReady: err %v after %d retries in %v", err, attempts.Load(), time.Since(start))
	}
}

func TestDialWrongClientKey(t *testing.T) {
	s := newTestServer(t)
	tg := s.Target()
	tg.Signer = newSigner(t)
	if _, err := Dial(context.Background(), tg); err == nil || errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("err = %v, want an authentication failure", err)
	}
	tg = s.Target()
	tg.HostKey = "not a key"
	if _, err := Dial(context.Background(), tg); err == nil || !strings.Contains(err.Error(), "pinned host key") {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitReadyUntilSSHAnswers(t *testing.T) {
	s := newTestServer(t)
	s.mode.Store(modeSilent)
	tg := s.Target()
	tg.Timeout = 300 * time.Millisecond
	var attempts atomic.Int32
	var errs []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	c, err := WaitReady(ctx, tg, func(err error) {
		// Like a booting VM: the port first accepts without speaking (the
		// guest's network is not up), then drops connections (nothing
		// listens), then sshd answers.
		switch attempts.Add(1) {
		case 1:
			s.mode.Store(modeDrop)
		case 3:
			s.mode.Store(modeSSH)
		}
		errs = append(errs, err.Error())
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out bytes.Buffer
	if code, err := c.Exec(ctx, "echo up", nil, &out, nil); err != nil || code != 0 || out.String() != "up\n" {
		t.Fatalf("exec after ready: %d %v %q", code, err, out.String())
	}
	if n := attempts.Load(); n != 3 {
		t.Errorf("%d failed attempts, want 3: %q", n, errs)
	}
	// 1 silent attempt bounded by tg.Timeout + 2 drops + backoffs 100+200+400ms.
	t.Logf("ready after %v, attempts: %q", time.Since(start), errs)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

// handshakes is the server's count of completed handshakes, once it counted
// at least atLeast (the client can be done before the server counts) or 2 s
// passed.
func handshakes(s *testServer, atLeast int32) int32 {
	for end := time.Now().Add(2 * time.Second); s.Handshks.Load() < atLeast && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	return s.Handshks.Load()
}

// TestDialWaitsForASlowHandshake: once the server has sent its version line,
// a key exchange slower than the first-byte timeout is waited for (the guest
// is there; giving up would make it start again beside the abandoned one),
// while a server that says nothing is given up on after the timeout, saying so.
func TestDialWaitsForASlowHandshake(t *testing.T) {
	s := newTestServer(t)
	s.SlowAfterVersion.Store(int64(time.Second))
	tg := s.Target()
	tg.Timeout = 300 * time.Millisecond
	start := time.Now()
	c, err := Dial(context.Background(), tg)
	if err != nil {
		t.Fatalf("a slow key exchange after the version line: %v", err)
	}
	c.Close()
	if d := time.Since(start); d < time.Second {
		t.Fatalf("connected in %v: the server was not slow", d)
	}
	if n := handshakes(s, 1); n != 1 {
		t.Fatalf("%d handshakes, want 1", n)
	}
	s.mode.Store(modeSilent)
	start = time.Now()
	_, err = Dial(context.Background(), tg)
	if err == nil || !strings.Contains(err.Error(), "said nothing within 300ms") {
		t.Fatalf("silent server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a silent server was waited on for %v", d)
	}
}

// TestWaitReadyWaitsForAListeningGuest: once the guest's network answered
// (a connection closed without a word), a server slow to say its first word
// is waited for instead of given up on after the timeout, which would leave
// its sshd running beside the next attempt's.
func TestWaitReadyWaitsForAListeningGuest(t *testing.T) {
	s := newTestServer(t)
	s.mode.Store(modeDrop)
	tg := s.Target()
	tg.Timeout = 300 * time.Millisecond
	var attempts atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := WaitReady(ctx, tg, func(err error) {
		if attempts.Add(1) == 1 {
			s.SlowToSpeak.Store(int64(time.Second))
			s.mode.Store(modeSSH)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n, h := attempts.Load(), handshakes(s, 1); n != 1 || h != 1 {
		t.Fatalf("%d failed attempts and %d handshakes, want 1 and 1", n, h)
	}
	// Before any answer a silent port is still given up on at the timeout.
	s2 := newTestServer(t)
	s2.SlowToSpeak.Store(int64(time.Second))
	tg2 := s2.Target()
	tg2.Timeout = 300 * time.Millisecond
	attempts.Store(0)
	if _, err := WaitReady(ctx, tg2, func(error) { attempts.Add(1); s2.SlowToSpeak.Store(0) }); err != nil {
		t.Fatal(err)
	}
	if n := attempts.Load(); n == 0 {
		t.Fatal("a server silent for longer than the timeout, before any answer, was waited for")
	}
}

func TestWaitReadyGivesUpWithContext(t *testing.T) {
	s := newTestServer(t)
	s.mode.Store(modeSilent)
	tg := s.Target()
	tg.Timeout = time.Minute // the caller's ctx must still win
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := WaitReady(ctx, tg, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("gave up after %v", d)
	}
}

func TestShellWithoutTerminal(t *testing.T) {
	s := newTestServer(t)
	c := dial(t, s)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() { w.WriteString("piped"); w.Close() }()
	var out bytes.Buffer
	code, err := c.Shell(context.Background(), r, &out, io.Discard, "cat")
	if err != nil || code != 0 || out.String() != "piped" {
		t.Fatalf("code %d err %v out %q", code, err, out.String())
	}
	if len(s.PtyReqs) != 0 {
		t.Error("asked for a PTY without a terminal")
	}
	// Login shell without a terminal.
	out.Reset()
	code, err = c.Shell(context.Background(), nil, &out, io.Discard, "")
	if err != nil || code != 3 || out.String() != "no pty\n" {
		t.Fatalf("code %d err %v out %q", code, err, out.String())
	}
}

func TestSFTP(t *testing.T) {
	s := newTestServer(t)
	c := dial(t, s)
	sc, err := c.SFTP()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	p := filepath.Join(t.TempDir(), "f")
	f, err := sc.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("via sftp"))
	f.Close()
	if b, _ := os.ReadFile(p); string(b) != "via sftp" {
		t.Fatalf("got %q", b)
	}
}
