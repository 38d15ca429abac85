package daemon

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/console"
	"github.com/fvmhq/fvm/core/driver"
)

// The host shows VMs through the web console (core/console) on 127.0.0.1,
// unless a machine shows its screen in a window of its own
// (driver.DisplayNative), and attaches clients to serial ports through each
// running machine's console.Mux (`fvm console`, the web console's serial tab).

// serveConsole starts the web console on console.port (or a free port) and
// returns what stops it. A console that cannot listen leaves the host running:
// Display then says why.
func (d *Daemon) serveConsole(ctx context.Context) (stop func()) {
	fail := func(err error) func() {
		d.log.Error("web console unavailable", "err", err)
		d.mu.Lock()
		d.consoleErr = err
		d.mu.Unlock()
		return func() {}
	}
	v, err := config.Load(d.opts.Layout)
	if err != nil {
		return fail(err)
	}
	port, err := config.ConsolePort(v)
	if err != nil {
		return fail(err)
	}
	ln, err := d.console.Listen(port)
	if err != nil {
		if port != 0 {
			err = fmt.Errorf("%w: pick another %s (or 0 for a free port)", err, config.KeyConsolePort)
		}
		return fail(err)
	}
	d.mu.Lock()
	d.consoleErr = nil
	d.mu.Unlock()
	// WebSockets take over their connections: they end with ctx, the host's.
	srv := &http.Server{Handler: d.console.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go srv.Serve(ln)
	d.log.Info("web console serving", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		srv.Close()
	}
}

// consoleHost is the daemon as the web console sees it.
type consoleHost struct{ d *Daemon }

func (h consoleHost) ConsoleTarget(ctx context.Context, name string) (console.Target, error) {
	d := h.d
	inst, _, r, err := d.lookup(ctx, name)
	if err != nil && inst == nil {
		return console.Target{}, err
	}
	t := console.Target{State: d.describe(ctx, inst).State}
	if err != nil || r == nil || !t.State.Active() {
		return t, nil // a backend this host lacks runs nothing here
	}
	if r.VNC != nil {
		t.VNC = r.VNC.DialVNC
	}
	d.mu.Lock()
	t.Serial = d.entry(name).serial
	d.mu.Unlock()
	return t, nil
}

// Display shows a VM's screen in its own window when it has one
// (driver.DisplayNative), and otherwise answers the web console's URL for
// the client to open: the screen, or with req.Serial the serial console. A
// stopped VM's page says so and connects once the VM runs.
func (d *Daemon) Display(ctx context.Context, name string, req api.DisplayRequest) (api.Display, error) {
	inst, v, r, err := d.lookup(ctx, name)
	if err != nil {
		return api.Display{}, err
	}
	state := d.describe(ctx, inst).State
	switch {
	case req.Serial && !v.Caps.SerialAttach:
		return api.Display{}, api.Errorf(api.CodeUnsupported, "vm %q's serial console cannot be attached (backend %s): `fvm logs -f %s` follows it", name, v.Name(), name)
	case req.Serial:
	case v.Caps.Display == driver.DisplayNative && r != nil && r.Window != nil:
		if err := r.Window.ShowWindow(ctx); err != nil {
			return api.Display{}, fmt.Errorf("vm %q: show its window: %w", name, err)
		}
		return api.Display{Native: true, State: state}, nil
	case v.Caps.Display == driver.DisplayNative: // shown in a window of its own, which needs a running VM
		return api.Display{}, api.Errorf(api.CodeConflict, "vm %q is %s: start it (`fvm start %s`), then its window opens", name, state, name)
	case v.Caps.Display == driver.DisplayNone:
		return api.Display{}, api.Errorf(api.CodeUnsupported, "vm %q has no display (backend %s): `fvm console %s` attaches its serial console", name, v.Name(), name)
	}
	u, err := d.console.URL(name, req.Serial)
	if err != nil {
		d.mu.Lock()
		why := d.consoleErr
		d.mu.Unlock()
		if why == nil {
			why = err
		}
		return api.Display{}, api.Errorf(api.CodeUnsupported, "the web console is not available: %v (see the host's log, daemon.log)", why)
	}
	return api.Display{URL: u, State: state}, nil
}

// Screenshot captures a running VM's screen (driver.Screenshotter).
func (d *Daemon) Screenshot(ctx context.Context, name string) (image.Image, error) {
	_, v, r, err := d.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notRunning(name)
	}
	if r.Screen == nil {
		return nil, api.Errorf(api.CodeUnsupported, "vm %q: its backend (%s) cannot take screenshots: %s", name, v.Name(), v.Caps.WhyNot(driver.CapScreenshot, v.Name()))
	}
	return r.Screen.Screenshot(ctx)
}

// AttachConsole attaches a client to a running VM's serial console: the tail
// lines of earlier output, then what the guest writes; what the client writes
// is typed into the guest. Closing the stream detaches; the VM goes on.
func (d *Daemon) AttachConsole(ctx context.Context, name string, tail int) (io.ReadWriteCloser, error) {
	_, v, r, err := d.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	mux := d.entry(name).serial
	d.mu.Unlock()
	if r == nil {
		return nil, notRunning(name)
	}
	if mux == nil {
		return nil, api.Errorf(api.CodeUnsupported, "vm %q's serial console cannot be attached (backend %s): `fvm logs -f %s` follows it", name, v.Name(), name)
	}
	s, err := mux.Attach(tail)
	if errors.Is(err, console.ErrClosed) {
		return nil, notRunning(name)
	}
	if err != nil {
		return nil, fmt.Errorf("vm %q: %w", name, err)
	}
	return s, nil
}

func notRunning(name string) error {
	return api.Errorf(api.CodeConflict, "vm %q is not running: start it with `fvm start %s`", name, name)
}
