package helper

import (
	"sync"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// fanout reads a VM's one state channel in one goroutine and hands every
// state to each subscriber: vz's StateChangedNotify returns the same channel
// to every caller, so two readers would steal each other's states.
type fanout struct {
	mu     sync.Mutex
	cur    vzd.MachineState
	subs   map[chan vzd.MachineState]struct{}
	closed bool
}

// subscriberBuffer is how many states a slow subscriber may fall behind by;
// past that it loses the oldest, never the newest.
const subscriberBuffer = 8

func newFanout(initial vzd.MachineState, in <-chan vzd.MachineState) *fanout {
	f := &fanout{cur: initial, subs: map[chan vzd.MachineState]struct{}{}}
	go f.run(in)
	return f
}

func (f *fanout) run(in <-chan vzd.MachineState) {
	for st := range in {
		f.mu.Lock()
		f.cur = st
		for c := range f.subs {
			send(c, st)
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.closed = true
	for c := range f.subs {
		close(c)
	}
	f.subs = nil
	f.mu.Unlock()
}

// send delivers st, dropping the oldest queued state if c is full. Only run
// sends (under f.mu), so after one receive there is room.
func send(c chan vzd.MachineState, st vzd.MachineState) {
	select {
	case c <- st:
	default:
		select {
		case <-c:
		default:
		}
		c <- st
	}
}

// subscribe returns a channel that first gets the current state, then every
// change; it is closed when the VM's channel closes or cancel is called.
func (f *fanout) subscribe() (<-chan vzd.MachineState, func()) {
	c := make(chan vzd.MachineState, subscriberBuffer)
	f.mu.Lock()
	defer f.mu.Unlock()
	c <- f.cur
	if f.closed {
		close(c)
		return c, func() {}
	}
	f.subs[c] = struct{}{}
	return c, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[c]; ok {
			delete(f.subs, c)
			close(c)
		}
	}
}

// current is the last state seen.
func (f *fanout) current() vzd.MachineState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}
