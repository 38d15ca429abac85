package daemon

import (
	"context"

	"github.com/fvmhq/fvm/core/driver"
)

// pruneDriverBases has each driver that keeps copies of bases elsewhere
// (libvirt's pools) remove those whose digest no local image has and no VM of
// its own was made from; it returns what was removed. A driver's failure (a
// libvirt host that does not answer) is logged: local pruning stands.
func (d *Daemon) pruneDriverBases(ctx context.Context) []string {
	imgs, err := d.images.Images(ctx)
	if err != nil {
		return nil
	}
	have := map[string]bool{}
	for _, img := range imgs {
		have[img.Digest] = true
	}
	var out []string
	for _, drv := range d.opts.Drivers {
		removed, err := driver.PruneBases(ctx, drv, func(digest string) bool { return have[digest] })
		if err != nil {
			d.log.Warn("prune bases", "backend", drv.Name(), "err", err)
		}
		out = append(out, removed...)
	}
	return out
}
