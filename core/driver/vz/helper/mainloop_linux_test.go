package helper

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The loop runs tasks in order on the thread that runs it; after a handover
// (AppKit taking the main thread) queued and later tasks go to the new runner.
func TestMainLoopHandover(t *testing.T) {
	l := newMainLoop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mainTid := make(chan int, 1)
	var mu sync.Mutex
	var order, tids []int
	record := func(i int) func() {
		return func() {
			mu.Lock()
			order = append(order, i)
			tids = append(tids, unix.Gettid())
			mu.Unlock()
		}
	}
	async := make(chan func(), 100)
	handedOver := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		mainTid <- unix.Gettid()
		l.Run(ctx)
	}()
	main := <-mainTid
	for i := range 5 {
		l.Do(record(i))
	}
	l.Do(func() {
		l.Handover(func(f func()) { async <- f })
		close(handedOver)
		<-ctx.Done() // like [NSApp run]: the main thread never comes back
	})
	l.Do(record(5)) // queued behind the handover, or sent to async: either way it runs once
	<-handedOver
	l.Do(record(6))
	deadline := time.After(5 * time.Second)
	for done := 0; done < 2; {
		select {
		case f := <-async:
			f()
			done++
		case <-deadline:
			t.Fatal("tasks after the handover never ran")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 7 {
		t.Fatalf("ran %v, want 0..6 once each", order)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("order %v", order)
		}
	}
	for i := range 5 {
		if tids[i] != main {
			t.Errorf("task %d ran on thread %d, not the loop's %d", i, tids[i], main)
		}
	}
}
