//go:build cgo

package helper

import (
	"errors"

	"github.com/Code-Hex/vz/v3"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// Rosetta translates x86-64 for arm64 guests: there is none on an Intel Mac.
func rosettaShare(string) (vz.DirectorySharingDeviceConfiguration, error) {
	return nil, errors.New("Rosetta needs Apple silicon")
}

func rosettaAvailability() vzd.RosettaAvailability { return vzd.RosettaUnsupported }
