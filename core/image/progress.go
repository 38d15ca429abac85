package image

import (
	"context"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// progressEvery bounds how often download progress is sent (stream and events).
const progressEvery = 250 * time.Millisecond

// reporter sends a pull's progress to the requesting client (fn, may be nil)
// and to every event subscriber, download bytes at most every progressEvery.
type reporter struct {
	s     *Service
	image string
	arch  vm.Arch
	fn    func(api.Event)
	last  time.Time
	sent  int64 // Done of the last download event sent
}

func (s *Service) reporter(image string, arch vm.Arch, fn func(api.Event)) *reporter {
	return &reporter{s: s, image: image, arch: arch, fn: fn}
}

func (r *reporter) send(ev api.Event) {
	ev.Type, ev.Image, ev.Arch = api.EventProgress, r.image, r.arch
	ev.Time = time.Now().UTC()
	r.s.publish(ev)
	if r.fn != nil {
		r.fn(ev)
	}
}

func (r *reporter) phase(p string) { r.send(api.Event{Phase: p}) }

// download reports bytes; total < 0 means unknown. The first and the last
// report always go out.
func (r *reporter) download(done, total int64) {
	now := time.Now()
	final := total >= 0 && done >= total
	if !final && !r.last.IsZero() && now.Sub(r.last) < progressEvery {
		return
	}
	if final && r.sent == done && !r.last.IsZero() {
		return // already said
	}
	r.last, r.sent = now, done
	if total < 0 {
		total = 0
	}
	r.send(api.Event{Phase: api.PhaseDownloading, Done: done, Total: total})
}

// keyLock is a set of mutexes by key whose Lock can be abandoned with its context.
type keyLock struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed when released
}

func newKeyLock() *keyLock { return &keyLock{held: map[string]chan struct{}{}} }

// lock takes key, calling waiting once if it has to wait for another holder.
func (k *keyLock) lock(ctx context.Context, key string, waiting func()) (unlock func(), err error) {
	told := false
	for {
		k.mu.Lock()
		ch, busy := k.held[key]
		if !busy {
			ch = make(chan struct{})
			k.held[key] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.held, key)
				k.mu.Unlock()
				close(ch)
			}, nil
		}
		k.mu.Unlock()
		if !told && waiting != nil {
			told = true
			waiting()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (k *keyLock) busy(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.held[key]
	return ok
}
