// Package host assembles the fvm host with this platform's drivers. `fvm daemon`
// and the menu-bar app both use it, so they serve the same host.
package host

import (
	"io"
	"log/slog"

	"github.com/fvmhq/fvm/core/daemon"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/store"
)

// New returns a host over layout, logging to w.
func New(layout store.Layout, version string, w io.Writer) *daemon.Daemon {
	drv := qemu.New(qemu.Options{Log: w})
	return daemon.New(daemon.Options{
		Layout:  layout,
		Driver:  drv,
		Version: version,
		Log:     slog.New(slog.NewTextHandler(w, nil)),
		Checks:  drv.Checks,
	})
}
