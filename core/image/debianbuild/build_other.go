//go:build !linux

package debianbuild

import (
	"context"

	"github.com/fvmhq/fvm/core/api"
)

// Build needs a Linux host: it returns ErrNotLinux elsewhere.
func Build(ctx context.Context, opts Options) (api.Image, error) {
	return api.Image{}, ErrNotLinux
}
