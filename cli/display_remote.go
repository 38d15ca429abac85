package cli

import (
	"context"
	"fmt"
	"net"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/desktop"
	"github.com/fvmhq/fvm/core/remote"
	"github.com/fvmhq/fvm/core/vm"
)

// displayTunnel shows a remote VM's web console here: the remote host serves
// it on its own 127.0.0.1, so this machine listens on its 127.0.0.1 and
// carries each connection through the host's API (the console accepts this
// listener's port as its Host). The browser opens the local address; the
// tunnel lasts until Ctrl-C.
func (a *app) displayTunnel(ctx context.Context, c *client.Client, name string, d api.Display, printURL bool) error {
	ln, err := remote.ListenLoopback(0)
	if err != nil {
		return fmt.Errorf("display %s: %w", name, err)
	}
	defer ln.Close()
	local, err := remote.LocalURL(d.URL, ln.Addr().(*net.TCPAddr).Port)
	if err != nil {
		return fmt.Errorf("display %s: the host answered a console address fvm cannot use (%s): %w", name, d.URL, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	served := make(chan error, 1)
	go func() {
		served <- remote.Serve(ctx, ln, func(ctx context.Context) (net.Conn, error) {
			return c.DialConsole(ctx, port)
		}, func(err error) {
			fmt.Fprintf(a.errOut, "==> console tunnel: %s\n", clean(err.Error()))
		})
	}()
	if printURL {
		fmt.Fprintln(a.out, local)
	} else {
		if d.State != vm.Running {
			a.phase("%s is %s: the page connects once it runs (`fvm start %s`)", name, d.State, name)
		}
		if err := desktop.New(nil).OpenURL(local); err != nil {
			return fmt.Errorf("open %s's console: %w; or open the address `fvm display --print-url %s` prints", name, err, name)
		}
	}
	a.phase("%s's console on %s is tunnelled to %s; Ctrl-C ends the tunnel", name, a.hostName(), ln.Addr())
	return <-served
}
