//go:build darwin

package host

import (
	"io"
	"runtime"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/driver/libvirt"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/driver/vz"
	"github.com/fvmhq/fvm/core/store"
)

// platformDrivers: vz first (auto prefers it for images of the Mac's
// architecture; its Validate refuses the rest), then QEMU with HVF. Before
// macOS 13, vz is listed as unavailable with the reason.
func platformDrivers(layout store.Layout, log io.Writer) ([]driver.Driver, []driver.Unavailable) {
	q := qemu.New(qemu.Options{Log: log, TCGCacheMiB: tcgCacheMiB(), LayersDir: layout.LayersDir()})
	lv := libvirt.New(libvirt.Options{Log: log}) // a Linux server's libvirt, over qemu+ssh://
	if why := vz.Unavailable(runtime.GOOS, vz.MacOSVersion()); why != "" {
		return []driver.Driver{q, lv}, []driver.Unavailable{{Name: "vz", Reason: why}}
	}
	return []driver.Driver{vz.New(vz.Options{Log: log}), q, lv}, nil
}
