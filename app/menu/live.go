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

	if m.opts.Hosts != nil { // contexts come and go: list them again now and then
		go func() {
			for {
				m.loadChoices()
				select {
				case <-ctx.Done():
					return
				case <-time.After(5 * time.Second):
				}
			}
		}()
	}
	wait := m.opts.BackoffMin
	for ctx.Err() == nil {
		began := time.Now()
		fctx, cancel := context.WithCancel(ctx)
		m.mu.Lock()
		gen, c := m.gen, m.client
		m.cancelFollow = cancel
		m.mu.Unlock()
		err := m.follow(fctx, gen, c)
		cancel()
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		switched := gen != m.gen
		m.mu.Unlock()
		if switched { // another host was picked: follow it at once
			wait = m.opts.BackoffMin
			continue
		}
		m.log.Debug("host event stream ended", "err", err)
		m.setHost(gen, nil, err)
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
func (m *Menu) follow(ctx context.Context, gen int, c Client) error {
	hctx, cancel := context.WithTimeout(ctx, m.hostTimeout())
	info, err := c.Host(hctx)
	cancel()
	if err != nil {
		return err
	}
	m.setHost(gen, &info, nil)
	m.Refresh()
	// Changes made between that listing and the subscription taking effect
	// raise no event for us: list once more when the stream has settled.
	settle := time.AfterFunc(m.opts.Settle, m.Refresh)
	defer settle.Stop()
	return c.Events(ctx, func(ev api.Event) {
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
		m.mu.Lock()
		gen, c := m.gen, m.client
		m.mu.Unlock()
		lctx, cancel := context.WithTimeout(ctx, max(10*time.Second, m.hostTimeout()))
		vms, err := c.List(lctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("list vms", "err", err) // the event stream notices a dead host
			}
			continue
		}
		m.setVMs(gen, vms)
	}
}
