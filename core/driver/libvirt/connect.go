package libvirt

import (
	"context"
	"errors"
	"fmt"
	"sync"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// connect opens an RPC connection to the daemon t names, bounded by ctx and
// dialTimeout. Errors name the URI and what to check.
func connect(ctx context.Context, t *target) (*golibvirt.Libvirt, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	type result struct {
		l   *golibvirt.Libvirt
		err error
	}
	res := make(chan result, 1)
	go func() {
		if t.own != nil {
			l, err := golibvirt.ConnectToURI(t.own)
			res <- result{l, err}
			return
		}
		l := golibvirt.NewWithDialer(t.dialer)
		res <- result{l, l.ConnectToURI(t.remote)}
	}()
	select {
	case r := <-res:
		if r.err != nil {
			return nil, fmt.Errorf("libvirt %s: cannot connect: %w", t.uri, r.err)
		}
		return r.l, nil
	case <-ctx.Done():
		go func() { // whatever the dial does later, drop it
			if r := <-res; r.err == nil {
				r.l.Disconnect()
			}
		}()
		return nil, fmt.Errorf("libvirt %s: no answer within %s: check that the host is up and its libvirtd runs", t.uri, dialTimeout)
	}
}

// client is the driver's long-lived connection to one daemon, reconnected on
// demand when it drops (the daemon restarted, ssh went away).
type client struct {
	t  *target
	mu sync.Mutex
	l  *golibvirt.Libvirt
}

func newClient(t *target) *client { return &client{t: t} }

// get returns the connection, connecting (again) when needed.
func (c *client) get(ctx context.Context) (*golibvirt.Libvirt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.l != nil && c.l.IsConnected() {
		return c.l, nil
	}
	l, err := connect(ctx, c.t)
	if err != nil {
		return nil, err
	}
	c.l = l
	return l, nil
}

// isNotFound reports libvirt's "no such domain/volume/pool" errors.
func isNotFound(err error) bool {
	var e golibvirt.Error
	if !errors.As(err, &e) {
		return false
	}
	switch golibvirt.ErrorNumber(e.Code) {
	case golibvirt.ErrNoDomain, golibvirt.ErrNoStorageVol, golibvirt.ErrNoStoragePool:
		return true
	}
	return false
}
