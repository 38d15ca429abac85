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
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 100 {
			in <- vzd.StateRunning
		}
		in <- vzd.StateStopped
		close(in)
	})
	for st := next(t, fast); st != ""; st = next(t, fast) { // until closed: every state delivered
	}
	wg.Wait()
	var last vzd.MachineState
	n := 0
	for st := range slow {
		last = st
		n++
	}
	if last != vzd.StateStopped || n > subscriberBuffer {
		t.Fatalf("the slow subscriber kept %d states ending in %s, want at most %d ending in stopped", n, last, subscriberBuffer)
	}
	// Unsubscribing twice is harmless.
	cancel()
	cancel()
}
