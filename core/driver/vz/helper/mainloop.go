package helper

import (
	"context"
	"sync"
)

// mainLoop runs functions on the main OS thread, where AppKit must be driven.
// Until a window is first needed the helper is headless and the main thread
// just runs queued tasks (Run). The task that starts AppKit calls Handover
// and then enters NSApplication's run loop, which never returns: from then on
// tasks go to the main dispatch queue, which that loop serves.
type mainLoop struct {
	mu    sync.Mutex
	queue []func()
	wake  chan struct{}
	async func(func()) // set by Handover
}

func newMainLoop() *mainLoop { return &mainLoop{wake: make(chan struct{}, 1)} }

// Do runs f on the main thread, soon; it does not wait.
func (l *mainLoop) Do(f func()) {
	l.mu.Lock()
	if a := l.async; a != nil {
		l.mu.Unlock()
		a(f)
		return
	}
	l.queue = append(l.queue, f)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run executes queued tasks one at a time on the calling thread (the main
// one, locked by the caller) until ctx ends or a task hands over for good.
func (l *mainLoop) Run(ctx context.Context) {
	for {
		l.mu.Lock()
		var f func()
		if len(l.queue) > 0 {
			f, l.queue = l.queue[0], l.queue[1:]
		}
		l.mu.Unlock()
		if f != nil {
			f()
			continue
		}
		select {
		case <-l.wake:
		case <-ctx.Done():
			return
		}
	}
}

// Handover, called by a task on the main thread that is about to enter a run
// loop of its own, sends later tasks and the ones still queued to async.
func (l *mainLoop) Handover(async func(func())) {
	l.mu.Lock()
	q := l.queue
	l.queue, l.async = nil, async
	l.mu.Unlock()
	for _, f := range q {
		async(f)
	}
}
