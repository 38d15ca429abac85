package menu

import (
	"context"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// Run keeps the menu live until ctx ends. It follows the host's event stream
// and lists the VMs again when one changes (one List per burst of events, no
// polling); when the host cannot be reached it retries with backoff.
func (m *Menu) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.refresher(ctx)
	}()
	defer func() { <-done }()

	wait := m.opts.BackoffMin
	for ctx.Err() == nil {
		began := time.Now()
		err := m.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		m.log.Debug("host event stream ended", "err", err)
		m.setHost(nil, err)
		if time.Since(began) > m.opts.BackoffMax {
			wait = m.opts.BackoffMin // it was up a good while: this is a new outage
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, m.opts.BackoffMax)
	}
}

// follow connects to the host and streams its events until the stream ends.
func (m *Menu) follow(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := m.opts.Client.Host(hctx)
	cancel()
	if err != nil {
		return err
	}
	m.setHost(&info, nil)
	m.Refresh()
	// Changes made between that listing and the subscription taking effect
	// raise no event for us: list once more when the stream has settled.
	settle := time.AfterFunc(m.opts.Settle, m.Refresh)
	defer settle.Stop()
	return m.opts.Client.Events(ctx, func(ev api.Event) {
		if strings.HasPrefix(ev.Type, "vm.") {
			m.Refresh()
		}
	})
}

// Refresh asks for the VMs to be listed again; requests made while one is
// pending fold into it.
func (m *Menu) Refresh() {
	select {
	case m.refreshc <- struct{}{}:
	default:
	}
}

func (m *Menu) refresher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.refreshc:
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		vms, err := m.opts.Client.List(lctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("list vms", "err", err) // the event stream notices a dead host
			}
			continue
		}
		m.setVMs(vms)
	}
}
