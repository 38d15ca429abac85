package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fvmhq/fvm/core/api"
)

// ImportBase caches the disk file at src as a base (by digest) without registering
// a name: `fvm run ./disk.qcow2` uses it. A file already cached is not copied again
// only when its digest matches; the copy is hashed on the way in.
func (r Registry) ImportBase(ctx context.Context, src string) (api.Image, error) {
	info, err := Inspect(src)
	if err != nil {
		return api.Image{}, err
	}
	if err := CheckDisk(info); err != nil {
		return api.Image{}, err
	}
	if err := os.MkdirAll(r.Layout.BasesDir(), 0o755); err != nil {
		return api.Image{}, err
	}
	path, digest, err := r.copyIn(ctx, src, info.Format)
	if err != nil {
		return api.Image{}, fmt.Errorf("cache %s: %w", src, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return api.Image{}, err
	}
	return api.Image{
		Name:    filepath.Base(src),
		Format:  string(info.Format),
		Path:    path,
		Size:    st.Size(),
		Virtual: info.VirtualSize,
		Digest:  digest,
		Source:  src,
	}, nil
}
