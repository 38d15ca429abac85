package helper

import (
	"sync"
	"testing"
	"time"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

func next(t *testing.T, c <-chan vzd.MachineState) vzd.MachineState {
	t.Helper()
	select {
	case st, ok := <-c:
		if !ok {
			return ""
		}
		return st
	case <-time.After(5 * time.Second):
		t.Fatal("no state within 5s")
		return ""
	}
}

func TestFanoutEverySubscriberSeesEveryState(t *testing.T) {
	in := make(chan vzd.MachineState)
	f := newFanout(vzd.StateStopped, in)
	var subs []<-chan vzd.MachineState
	for range 3 {
		c, _ := f.subscribe()
		subs = append(subs, c)
	}
	seq := []vzd.MachineState{vzd.StateStarting, vzd.StateRunning, vzd.StatePausing, vzd.StatePaused}
	go func() {
		for _, st := range seq {
			in <- st
		}
	}()
	for i, c := range subs {
		if got := next(t, c); got != vzd.StateStopped {
			t.Fatalf("subscriber %d first got %s, want the current state", i, got)
		}
		for _, want := range seq {
			if got := next(t, c); got != want {
				t.Fatalf("subscriber %d got %s, want %s", i, got, want)
			}
		}
	}
	if f.current() != vzd.StatePaused {
		t.Fatalf("current %s", f.current())
	}
	close(in)
	for _, c := range subs {
		if st, ok := <-c; ok {
			t.Fatalf("got %s after the VM's channel closed", st)
		}
	}
	late, _ := f.subscribe()
	if next(t, late) != vzd.StatePaused || next(t, late) != "" {
		t.Fatal("a late subscriber gets the last state, then a closed channel")
	}
}

// A subscriber that never reads does not block the others, and keeps the newest state.
func TestFanoutSlowSubscriber(t *testing.T) {
	in := make(chan vzd.MachineState)
	f := newFanout(vzd.StateStopped, in)
	slow, _ := f.subscribe()
	fast, cancel := f.subscribe()
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 100 {
			in <- vzd.StateRunning
		}
		in <- vzd.StateStopped
	})
	for st := next(t, fast); st != vzd.StateStopped || f.current() != vzd.StateStopped; st = next(t, fast) {
	}
	wg.Wait()
	var last vzd.MachineState
	for n := len(slow); n > 0; n-- {
		last = <-slow
	}
	if last != vzd.StateStopped {
		t.Fatalf("the slow subscriber's newest state is %s, want stopped", last)
	}
	// Unsubscribing twice is harmless.
	cancel()
	cancel()
}
