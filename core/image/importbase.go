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
// only when its digest matches; the copy is hashed on the way in. The caller keeps
// prune off the base until a VM's spec names it (Service.Resolve holds it).
func (r Registry) ImportBase(ctx context.Context, src string, placed func(base string)) (api.Image, error) {
	in, err := OpenInput(src)
	if err != nil {
		return api.Image{}, err
	}
	defer in.Close()
	if err := CheckDisk(in.Info); err != nil {
		return api.Image{}, err
	}
	img := api.Image{Name: filepath.Base(src), Source: src}
	_, _, err = r.PutBase(ctx, BaseSource{In: in, Name: src}, in.Info.Format, func(path string, digest Digest, kept Info) error {
		st, err := os.Stat(path)
		img.Path, img.Digest = path, digest.String()
		img.Format, img.Virtual = string(kept.Format), kept.VirtualSize // what was checked: the copy kept
		if err == nil {
			img.Size = st.Size()
		}
		if placed != nil {
			placed(path)
		}
		return err
	})
	if err != nil {
		return api.Image{}, fmt.Errorf("cache %q: %w", src, err)
	}
	return img, nil
}
