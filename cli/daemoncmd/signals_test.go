package daemoncmd

import (
	"context"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// run serves a fake host that stops on its context when polite, or never
// (a host stuck in some read), and sends the signals; it returns the exit
// code asked for (-1: none) and how long after the first signal it came.
func run(t *testing.T, polite bool, signals int, grace time.Duration) (code int, after time.Duration) {
	t.Helper()
	sigs := make(chan os.Signal, 2)
	exited := make(chan int, 1)
	stuck := make(chan struct{})
	serve := func(ctx context.Context) error {
		if polite {
			<-ctx.Done()
			return nil
		}
		<-stuck // what the real os.Exit ends
		return nil
	}
	exit := func(c int) { exited <- c; close(stuck) }
	done := make(chan error, 1)
	go func() { done <- serveUntilSignalled(context.Background(), serve, sigs, grace, exit, io.Discard) }()
	t0 := time.Now()
	for i := 0; i < signals; i++ {
		sigs <- syscall.SIGTERM
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-done:
	case <-time.After(grace + 5*time.Second):
		t.Fatal("the host neither stopped nor was made to exit")
	}
	select {
	case code = <-exited:
	default:
		code = -1
	}
	return code, time.Since(t0)
}

func TestSIGTERMStopsTheHostWhateverItDoes(t *testing.T) {
	const grace = 300 * time.Millisecond
	if code, _ := run(t, true, 1, grace); code != -1 {
		t.Errorf("an orderly stop exited with %d: it should return", code)
	}
	if code, after := run(t, false, 2, time.Minute); code != 1 || after > 5*time.Second {
		t.Errorf("a stuck host after a second SIGTERM: exit %d after %s, want 1 at once", code, after)
	}
	if code, after := run(t, false, 1, grace); code != 1 || after < grace || after > grace+3*time.Second {
		t.Errorf("a stuck host after one SIGTERM: exit %d after %s, want 1 after the %s grace", code, after, grace)
	}
	// No signal: the host returns by itself and nothing exits later.
	exited := make(chan int, 1)
	err := serveUntilSignalled(context.Background(), func(context.Context) error { return nil }, make(chan os.Signal), grace,
		func(c int) { exited <- c }, io.Discard)
	time.Sleep(2 * grace)
	if err != nil || len(exited) != 0 {
		t.Errorf("a host that returned: %v, exit called %d times", err, len(exited))
	}
}
