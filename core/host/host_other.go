//go:build !darwin

package host

import (
	"io"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/driver/libvirt"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/store"
)

// platformDrivers: QEMU (KVM, or TCG where KVM cannot run guests); vz is macOS's.
func platformDrivers(layout store.Layout, log io.Writer) ([]driver.Driver, []driver.Unavailable) {
	return []driver.Driver{qemu.New(qemu.Options{Log: log, TCGCacheMiB: tcgCacheMiB(), LayersDir: layout.LayersDir()}), libvirt.New(libvirt.Options{Log: log, LocalKVM: qemu.KVMUnusableHere})},
		[]driver.Unavailable{{Name: "vz", Reason: "vz needs macOS 13+ (Apple's Virtualization framework): use --backend qemu"}}
}
