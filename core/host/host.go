// Package host assembles the fvm host with this platform's drivers. `fvm daemon`
// and the menu-bar app both use it, so they serve the same host. A new backend
// is registered here (host_<os>.go) and nowhere else outside its own package.
package host

import (
	"io"
	"log/slog"
	"os"
	"strconv"

	"github.com/fvmhq/fvm/core/daemon"
	"github.com/fvmhq/fvm/core/store"
)

// New returns a host over layout, logging to w.
func New(layout store.Layout, version string, w io.Writer) *daemon.Daemon {
	drivers, unavailable := platformDrivers(layout, w)
	return daemon.New(daemon.Options{
		Layout:      layout,
		Drivers:     drivers,
		Unavailable: unavailable,
		Version:     version,
		Log:         slog.New(slog.NewTextHandler(w, nil)),
	})
}

// tcgCacheMiB reads FVM_TCG_CACHE_MIB, a tuning knob for TCG's translation
// cache (0 or unset: the driver's default; -1: QEMU's own).
func tcgCacheMiB() int {
	n, _ := strconv.Atoi(os.Getenv("FVM_TCG_CACHE_MIB"))
	return n
}
