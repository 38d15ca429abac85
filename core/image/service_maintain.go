package image

// The service's upkeep of the cache: update checks, the catalog listing,
// and pruning what no image and no VM uses.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// CheckUpdates compares every cached catalog image with what upstream offers now.
// A failure to reach one upstream is reported in its row, not for the whole table.
func (s *Service) CheckUpdates(ctx context.Context, req api.UpdatesRequest) ([]api.ImageUpdate, error) {
	imgs, err := s.reg.List()
	if err != nil {
		return nil, err
	}
	cat, err := s.catalog(Overrides{req.Mirrors, req.Indexes})
	if err != nil {
		return nil, err
	}
	rows := []api.ImageUpdate{}
	for _, img := range imgs {
		if img.Ref == "" || img.Broken != "" {
			continue // local builds and imports have no upstream to ask
		}
		row := api.ImageUpdate{Name: img.Name, Ref: img.Ref, Arch: img.Arch, CachedBuild: img.Build, CachedDigest: img.UpstreamDigest}
		if r, err := s.checkOne(ctx, cat, img); err != nil {
			row.Error = err.Error()
		} else {
			row.AvailableBuild, row.AvailableDigest, row.Newer = r.Latest.Build, r.Latest.Digest.String(), r.Newer
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (s *Service) checkOne(ctx context.Context, cat *Catalog, img api.Image) (Available, error) {
	e, err := cat.Resolve(img.Ref, img.Arch)
	if err != nil {
		return Available{}, err
	}
	var cached Digest
	if img.UpstreamDigest != "" {
		if cached, err = ParseDigest(img.UpstreamDigest); err != nil {
			return Available{}, fmt.Errorf("image %s: recorded digest: %w", img.Name, err)
		}
	}
	return CheckUpdateWith(ctx, s.opts.HTTPClient, e, cached, img.Build, s.opts.Keys)
}

// Catalog lists the releases that can be pulled, which arches are cached and
// what verifies each distro's downloads (its trust).
func (s *Service) Catalog(ctx context.Context) ([]api.CatalogItem, error) {
	cat, err := s.catalog(Overrides{})
	if err != nil {
		return nil, err
	}
	imgs, _ := s.reg.List()
	cached := map[string][]vm.Arch{}
	for _, img := range imgs {
		if img.Ref != "" && img.Broken == "" {
			cached[img.Ref] = append(cached[img.Ref], img.Arch)
		}
	}
	out := cat.List()
	for i := range out {
		out[i].Cached = cached[out[i].Ref]
	}
	if out == nil {
		out = []api.CatalogItem{}
	}
	return out, nil
}

// PruneImages deletes cached bases that no image and no VM uses (with their
// derived files), and what downloads left behind (partial files, finished
// files never filed, lock files) unless a pull is using them.
func (s *Service) PruneImages(ctx context.Context) (api.PruneResult, error) {
	lock, err := s.reg.LockCache()
	if err != nil {
		return api.PruneResult{}, fmt.Errorf("prune: cache lock: %w (nothing was removed)", err)
	}
	defer lock.Unlock()
	used, err := s.basesInUse()
	if err != nil {
		return api.PruneResult{}, fmt.Errorf("prune: %w (nothing was removed)", err)
	}
	res := api.PruneResult{Removed: []string{}}
	remove := func(p string, size int64) {
		if err := os.Remove(p); err == nil {
			res.Removed = append(res.Removed, p)
			res.Freed += size
		} else {
			s.opts.Log.Warn("prune", "file", p, "err", err)
		}
	}
	bases := s.opts.Layout.BasesDir()
	ents, _ := os.ReadDir(bases)
	for _, e := range ents {
		p := filepath.Join(bases, e.Name())
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || used[p] || s.isHeld(p) {
			continue
		}
		if store.IsTemp(e.Name()) && !store.IsStale(p) {
			continue // an import being written
		}
		if base, ok := DerivedBase(p); ok {
			if _, err := os.Stat(base); err == nil {
				continue // goes with its base, below, not on its own
			}
		}
		remove(p, info.Size())
		for _, d := range s.derivedFiles(api.Image{Path: p}) {
			if st, err := os.Stat(d); err == nil && !used[d] { // a VM may read it still (a vz disk copied from it)
				remove(d, st.Size())
			}
		}
	}
	dl := s.opts.Layout.DownloadsDir()
	ents, _ = os.ReadDir(dl)
	for _, e := range ents {
		p := filepath.Join(dl, e.Name())
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || s.pulls.busy(downloadKey(p)) {
			continue
		}
		remove(p, info.Size())
	}
	return res, nil
}

// downloadKey maps a file in downloads/ to the destination its pull locks.
func downloadKey(p string) string {
	for _, suf := range []string{PartSuffix, ".unpack", VerifiedSuffix, ".lock"} {
		p = strings.TrimSuffix(p, suf)
	}
	return p
}

// basesInUse collects the bases named by local images and by VMs (asked of
// the host: specs and, as ground truth, what each VM's driver says it reads).
func (s *Service) basesInUse() (map[string]bool, error) {
	used, err := s.opts.BasesInUse()
	if err != nil {
		return nil, err
	}
	imgs, err := s.reg.List()
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		if img.Path != "" {
			used[img.Path] = true
		}
	}
	return used, nil
}
