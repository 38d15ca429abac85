package daemon

import (
	"context"
	"os"
	"path/filepath"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/warm"
)

// retireStaleSpares checks each spare wish against the snapshot new VMs of
// its spec clone from now, and returns the wishes to keep spares for. A
// snapshot that no longer serves (another QEMU, firmware or device set since
// it was made) would never have its spare taken, and that spare, frozen,
// would hold its memory and keep the snapshot from being pruned: it is
// dropped. The wish moves to the snapshot that serves now once it exists (the
// host makes it after the image's next cold boot, or `fvm image warm`);
// until then it waits. A wish whose snapshot is gone without a successor in
// sight (pruned, its image removed) goes.
func (d *Daemon) retireStaleSpares(ctx context.Context) []spareWish {
	files, _ := filepath.Glob(filepath.Join(d.sparesDir(), "*.json"))
	var keep []spareWish
	for _, f := range files {
		var w spareWish
		if err := store.ReadJSON(f, &w); err != nil {
			continue
		}
		if now, err := d.warm.Serving(ctx, w.Spec); err == nil && now != filepath.Clean(w.Snapshot) {
			d.dropSpare(w.Snapshot)
			if _, err := warm.Load(now); err != nil {
				continue // its successor is not made yet
			}
			old := w.Snapshot
			w.Snapshot, w.Spec.Warm = now, now
			if err := store.WriteJSON(d.spareWishFile(now), w); err != nil {
				d.log.Warn("move a spare clone's wish to the current warm snapshot", "from", old, "to", now, "err", err)
				continue
			}
			os.Remove(f)
			d.log.Info("spare clones now come from the image's current warm snapshot", "image", w.Spec.Image, "from", old, "to", now)
		}
		if _, err := warm.Load(w.Snapshot); err != nil {
			os.Remove(f)
			continue
		}
		keep = append(keep, w)
	}
	return keep
}
