package driver

import (
	"context"
	"testing"
	"time"
)

func TestAwaitAgent(t *testing.T) {
	calls := 0
	answers := func(context.Context) error { calls++; return nil }
	if !AwaitAgent(context.Background(), answers) || calls != 1 {
		t.Fatalf("an agent that answers: %d pings", calls)
	}
	// A ping that fails at once waits out its turn: no busy loop, and the
	// wait ends with ctx.
	calls = 0
	refused := func(context.Context) error { calls++; return ErrNoAgent }
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if AwaitAgent(ctx, refused) {
		t.Fatal("no agent, yet AwaitAgent says it answered")
	}
	if calls != 1 || time.Since(t0) < 250*time.Millisecond {
		t.Fatalf("%d pings in %s: a refused ping must wait out its turn", calls, time.Since(t0))
	}
	// A ping waiting for its answer gets the turn's two seconds.
	var deadline time.Duration
	slow := func(ctx context.Context) error {
		d, _ := ctx.Deadline()
		deadline = time.Until(d)
		return nil
	}
	if !AwaitAgent(context.Background(), slow) || deadline < 1900*time.Millisecond || deadline > 2*time.Second {
		t.Fatalf("a ping's turn: %s, want 2 s", deadline)
	}
}
