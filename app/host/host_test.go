package host

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/daemon"
)

type fakeServer struct {
	results []error // what successive Serve calls return; past the end, serve until ctx ends
	calls   atomic.Int32
}

func (f *fakeServer) Serve(ctx context.Context) error {
	i := int(f.calls.Add(1)) - 1
	if i < len(f.results) {
		return f.results[i]
	}
	<-ctx.Done()
	return nil
}

func TestTakesOverWhenOtherHostStops(t *testing.T) {
	busy := fmt.Errorf("%w for /x (socket /x/fvm.sock)", daemon.ErrHostRunning)
	f := &fakeServer{results: []error{busy, busy, busy}}
	var told atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, f, Options{Retry: time.Millisecond, OtherHost: func(error) { told.Add(1) }})
	}()
	deadline := time.Now().Add(2 * time.Second)
	for f.calls.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("Serve called %d times, want 4", f.calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if told.Load() != 1 {
		t.Errorf("told about the other host %d times, want once", told.Load())
	}
}

func TestOtherFailureStops(t *testing.T) {
	f := &fakeServer{results: []error{errors.New("listen: address in use")}}
	var failed error
	Run(context.Background(), f, Options{Failed: func(err error) { failed = err }})
	if failed == nil || f.calls.Load() != 1 {
		t.Errorf("failed = %v after %d calls", failed, f.calls.Load())
	}
}
