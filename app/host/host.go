// Package host runs core's daemon inside the menu-bar app: the same socket and
// API as `fvm daemon`. When another host already owns the state directory the
// app stays a client of it and takes over once that host stops.
package host

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/fvmhq/fvm/core/daemon"
)

// Server is what the app hosts; *daemon.Daemon is one.
type Server interface {
	Serve(ctx context.Context) error
}

// Options tell the app what the host is doing.
type Options struct {
	Log *slog.Logger
	// OtherHost is called once when another process hosts the VMs; the app
	// then drives that host's VMs and keeps trying to take over.
	OtherHost func(err error)
	// Failed is called when hosting fails for another reason; the app does
	// not retry then (the menu still shows whatever host answers).
	Failed func(err error)
	// Retry is how often to try again while another host runs (default 2s).
	Retry time.Duration
}

// Run hosts until ctx ends, and returns once the host has stopped serving.
// VMs keep running when it returns; the next host re-adopts them.
func Run(ctx context.Context, s Server, o Options) {
	if o.Retry <= 0 {
		o.Retry = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	told := false
	for {
		err := s.Serve(ctx)
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, daemon.ErrHostRunning) {
			o.Log.Error("cannot host VMs", "err", err)
			if o.Failed != nil {
				o.Failed(err)
			}
			return
		}
		if !told {
			// Not an error: `fvm daemon` or another app instance got there first.
			o.Log.Info("another fvm host is running: this app drives it and takes over when it stops", "err", err)
			if o.OtherHost != nil {
				o.OtherHost(err)
			}
			told = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(o.Retry):
		}
	}
}
