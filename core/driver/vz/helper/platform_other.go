//go:build !darwin || !cgo

package helper

import (
	"errors"
	"log/slog"
	"os"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// errNotMac: Virtualization.framework exists on macOS only, through cgo.
var errNotMac = errors.New("the vz helper runs on macOS 13+ only (a darwin build with cgo)")

var native = platform{
	newVM: func(*mainLoop) NewVM {
		return func(vzd.Plan, *os.File, *slog.Logger) (VM, error) { return nil, errNotMac }
	},
	probe: func() (vzd.HostCaps, error) { return vzd.HostCaps{}, errNotMac },
}
