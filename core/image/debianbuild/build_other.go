//go:build !linux

package debianbuild

import (
	"context"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// Build needs a Linux host: it returns ErrNotLinux elsewhere.
func Build(ctx context.Context, opts Options) (api.Image, error) {
	return api.Image{}, ErrNotLinux
}

// CheckHost returns ErrNotLinux: images are built on Linux hosts only.
func CheckHost(vm.Arch) error { return ErrNotLinux }
