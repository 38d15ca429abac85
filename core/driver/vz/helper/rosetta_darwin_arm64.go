//go:build cgo

package helper

import (
	"github.com/Code-Hex/vz/v3"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// rosettaShare is the Rosetta directory share under tag; the guest mounts it
// (virtiofs) and registers its rosetta binary for x86-64 ELF files.
func rosettaShare(tag string) (vz.DirectorySharingDeviceConfiguration, error) {
	share, err := vz.NewLinuxRosettaDirectoryShare()
	if err != nil {
		return nil, err
	}
	dev, err := vz.NewVirtioFileSystemDeviceConfiguration(tag)
	if err != nil {
		return nil, err
	}
	dev.SetDirectoryShare(share)
	return dev, nil
}

func rosettaAvailability() vzd.RosettaAvailability {
	switch vz.LinuxRosettaDirectoryShareAvailability() {
	case vz.LinuxRosettaAvailabilityInstalled:
		return vzd.RosettaInstalled
	case vz.LinuxRosettaAvailabilityNotInstalled:
		return vzd.RosettaNotInstalled
	}
	return vzd.RosettaUnsupported
}
