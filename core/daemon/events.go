package daemon

import (
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// broker fans events out to subscribers. A slow subscriber loses events rather
// than stalling the host: its buffer is bounded and sends never block.
type broker struct {
	mu   sync.Mutex
	subs map[chan api.Event]struct{}
}

func newBroker() *broker { return &broker{subs: map[chan api.Event]struct{}{}} }

func (b *broker) publish(ev api.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (b *broker) subscribe() (<-chan api.Event, func()) {
	ch := make(chan api.Event, 64)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
			close(ch)
		})
	}
}
