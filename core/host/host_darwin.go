//go:build darwin

package host

import (
	"io"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/driver/qemu"
)

// platformDrivers: QEMU with HVF. The vz backend registers here when it lands.
func platformDrivers(log io.Writer) ([]driver.Driver, []driver.Unavailable) {
	return []driver.Driver{qemu.New(qemu.Options{Log: log, TCGCacheMiB: tcgCacheMiB()})},
		[]driver.Unavailable{{Name: "vz", Reason: "the vz backend is not built into this fvm yet: use --backend qemu"}}
}
