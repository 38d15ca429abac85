package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/fvmhq/fvm/core/api/server"
	"github.com/fvmhq/fvm/core/store"
)

// ErrHostRunning means another host owns this FVM_HOME.
var ErrHostRunning = server.ErrHostRunning

// exitingHostWait bounds how long a starting host waits for the lock of a
// host that holds it without serving (one that is exiting).
const exitingHostWait = 10 * time.Second

// socketAnswers says whether a host serves the socket at path.
func socketAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, 500*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// Serve runs the host until ctx ends: it takes the host lock (one host per state
// directory), re-adopts running VMs and serves the API on the socket. VMs keep
// running when it returns; the next host adopts them.
func (d *Daemon) Serve(ctx context.Context) error {
	l := d.opts.Layout
	if err := l.EnsureRunDir(); err != nil {
		return fmt.Errorf("run dir %s: %w", l.RunDir, err)
	}
	lock, err := store.TryLock(l.DaemonLock())
	// A host that is exiting has closed its socket but still holds the lock
	// for a moment: a command run right then starts this host, which waits
	// for that lock instead of failing. A host that serves is refused at once.
	for end := time.Now().Add(exitingHostWait); errors.Is(err, store.ErrLocked) && time.Now().Before(end) && !socketAnswers(l.SocketPath()); {
		time.Sleep(100 * time.Millisecond)
		lock, err = store.TryLock(l.DaemonLock())
	}
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w for %s (socket %s): use it, or stop it first", ErrHostRunning, l.DataDir, l.SocketPath())
	}
	if err != nil {
		return fmt.Errorf("host lock %s: %w", l.DaemonLock(), err)
	}
	defer lock.Unlock()

	ln, err := server.Listen(l.SocketPath())
	if err != nil {
		return err
	}
	// Under the host lock nothing else of ours runs: what a crash left half-made
	// (temporaries of creates, imports, downloads, atomic writes) goes now.
	d.killInterrupted(ctx) // a spare's hypervisor, before its directory goes
	for _, p := range append(d.store.CleanStale(), d.images.CleanStale()...) {
		d.log.Info("removed what an interrupted operation left", "path", p)
	}
	if fixed := l.FixModes(); len(fixed) > 0 { // an older fvm's world-readable bases, specs...
		d.log.Info("made state private to this user (0700 directories, 0600 files, 0400 bases)", "paths", len(fixed))
	}
	d.mu.Lock()
	d.serving = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.serving = false
		d.mu.Unlock()
	}()
	d.Adopt(ctx)
	d.keepSpares(spareRefill)
	defer d.serveConsole(ctx)()
	// Request contexts derive from ctx, so streams (events, logs -f) end with the host.
	srv := &http.Server{Handler: server.Handler(d, server.Options{Log: d.log, Version: d.opts.Version}), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	d.log.Info("fvm host serving", "socket", l.SocketPath())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx) // event streams end with the handlers' contexts
	d.bgCancel()       // unfinished warm snapshots: their template VMs are killed and removed
	d.warm.Wait()
	d.stopSpares()
	d.stopEphemeral(context.Background())
	return nil
}
