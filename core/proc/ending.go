package proc

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Ending is how a running hypervisor process ends, as both drivers' machines
// track it: Gone is closed once the process vanished (and its files were
// removed), then Done gets the end's error (nil for a clean one) and is
// closed; Stopping says that the end was asked for.
type Ending struct {
	Gone     chan struct{}
	Done     chan error
	stopping atomic.Bool
}

// NewEnding tracks a process that runs now.
func NewEnding() *Ending { return &Ending{Gone: make(chan struct{}), Done: make(chan error, 1)} }

// pollInterval is how often an adopted process, which is not our child, is checked.
const pollInterval = 250 * time.Millisecond

// Watch waits for the process to end: through Wait for our child c, by
// polling alive for an adopted one (c nil: not our child, init reaps it).
// failed turns a child's failed Wait into the end's error (nil: none);
// cleanup removes what the process left. Run it in a goroutine of its own.
func (e *Ending) Watch(vmName string, c *Child, alive func() bool, failed func(error) error, cleanup func() error) {
	var err error
	if c != nil {
		<-c.Exited
		if c.Err != nil {
			err = failed(c.Err)
		}
	} else {
		t := time.NewTicker(pollInterval)
		for range t.C {
			if !alive() {
				break
			}
		}
		t.Stop()
	}
	if rerr := cleanup(); rerr != nil && err == nil {
		err = fmt.Errorf("vm %q: clean up: %w", vmName, rerr)
	}
	close(e.Gone)
	e.Done <- err
	close(e.Done)
}

// Exited reports whether the process has ended.
func (e *Ending) Exited() bool {
	select {
	case <-e.Gone:
		return true
	default:
		return false
	}
}

// Stopping reports whether an end was asked for (Shutdown, Kill, or Ask).
func (e *Ending) Stopping() bool { return e.stopping.Load() }

// Ask marks an end as asked for, or clears that when a request failed.
func (e *Ending) Ask(on bool) { e.stopping.Store(on) }

// Shutdown asks the guest to power off with ask (the virtual power button),
// unless the process has ended already; a failure once it has ended is none.
func (e *Ending) Shutdown(vmName string, ask func() error) error {
	if e.Exited() {
		return nil
	}
	e.stopping.Store(true)
	err := ask()
	if err != nil && e.Exited() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vm %q: shutdown: %w", vmName, err)
	}
	return nil
}

// Kill ends the process (pid, a what; ours: it is still the process we
// track) with SIGKILL and waits until it is Gone, at most wait.
func (e *Ending) Kill(vmName string, pid int, what string, ours bool, wait time.Duration) error {
	if e.Exited() {
		return nil
	}
	e.stopping.Store(true)
	if err := KillAndWait(pid, what, ours, e.Gone, wait); err != nil {
		return fmt.Errorf("vm %q: %w", vmName, err)
	}
	return nil
}
