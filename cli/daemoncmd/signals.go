package daemoncmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// stopGrace bounds a host's orderly stop after SIGTERM or SIGINT: the API's
// requests get 5 s to end, unfinished warm snapshots are cleaned up, VMs that
// die with the host are stopped. Past it (a stop that hangs, whatever it is
// doing) the process exits anyway: its VMs outlive it and the next host
// adopts them, and everything fvm writes survives a kill.
const stopGrace = 10 * time.Second

// serveUntilSignalled runs serve until it returns. The first signal on sigs
// cancels serve's context (an orderly stop); a second signal, or stopGrace
// after the first, calls exit at once, so a host stops on SIGTERM whatever
// it is doing.
func serveUntilSignalled(parent context.Context, serve func(context.Context) error, sigs <-chan os.Signal,
	grace time.Duration, exit func(code int), log io.Writer) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	served := make(chan struct{})
	defer close(served)
	go func() {
		var sig os.Signal
		select {
		case sig = <-sigs:
		case <-served:
			return
		}
		fmt.Fprintf(log, "fvm host: %v: stopping (a second signal, or %s, ends it at once; VMs keep running)\n", sig, grace)
		cancel()
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case sig = <-sigs:
			fmt.Fprintf(log, "fvm host: %v again: exiting now\n", sig)
		case <-timer.C:
			fmt.Fprintf(log, "fvm host: still stopping %s after %v: exiting now\n", grace, sig)
		case <-served:
			return
		}
		exit(1)
	}()
	return serve(ctx)
}
