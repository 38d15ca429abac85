// Package host assembles the fvm host with this platform's drivers. `fvm daemon`
// and the menu-bar app both use it, so they serve the same host. A new backend
// is registered here (host_<os>.go) and nowhere else outside its own package.
package host

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/fvmhq/fvm/core/daemon"
	"github.com/fvmhq/fvm/core/store"
)

// New returns a host over layout, logging to w. It makes this process's
// umask 077: what the host and the processes it starts (QEMU, virtiofsd, vz's
// helpers) create in its state is private to the user from its creation, not
// after a chmod (store's PrivateDir and PrivateFile).
func New(layout store.Layout, version string, w io.Writer) *daemon.Daemon {
	syscall.Umask(0o077)
	// VM sockets too long for a socket address go through aliases in the run dir.
	store.SetSocketAliasDir(filepath.Join(layout.RunDir, store.SocketAliasDirName))
	drivers, unavailable := platformDrivers(layout, w)
	log := slog.New(slog.NewTextHandler(w, nil))
	excludeFromBackups(layout, log) // macOS: VM disks and bases stay out of Time Machine
	return daemon.New(daemon.Options{
		Layout:      layout,
		Drivers:     drivers,
		Unavailable: unavailable,
		Version:     version,
		Log:         log,
	})
}

// tcgCacheMiB reads FVM_TCG_CACHE_MIB, a tuning knob for TCG's translation
// cache (0 or unset: the driver's default; -1: QEMU's own).
func tcgCacheMiB() int {
	n, _ := strconv.Atoi(os.Getenv("FVM_TCG_CACHE_MIB"))
	return n
}
