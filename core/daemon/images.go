package daemon

// The host's image routes (api/server.ImageService) are the image service's
// (core/image): this file only wires it to the host's config, events and VMs.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/server"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

var _ server.ImageService = (*Daemon)(nil)

func (d *Daemon) newImageService() *image.Service {
	return image.NewService(image.ServiceOptions{
		Layout:     d.opts.Layout,
		Log:        d.log,
		Catalog:    d.catalog,
		Publish:    d.events.publish,
		BasesInUse: d.vmBases,
	})
}

// catalog is the built-in catalog with the config file's additions and mirrors,
// read on each use so edits to the config file apply without a host restart;
// overrides (from the client's environment) win.
func (d *Daemon) catalog(overrides image.Overrides) (*image.Catalog, error) {
	v, err := config.Load(d.opts.Layout)
	if err != nil {
		return nil, err
	}
	cat, err := config.ImageCatalog(v)
	if err != nil {
		return nil, err
	}
	return overrides.Apply(cat)
}

// vmBases collects the bases VMs read: each VM's spec and, as ground truth,
// what its driver says the VM's disk reads (which also covers a VM whose spec
// cannot be read: every driver is asked).
func (d *Daemon) vmBases() (map[string]bool, error) {
	used := map[string]bool{}
	dirs, err := os.ReadDir(d.opts.Layout.VMsDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range dirs {
		if e.IsDir() && store.IsCreating(e.Name()) {
			// A clone being made reads its origin's frozen layer, which its
			// source may have flattened away already: what of it can be told
			// is in use (its base is held by Resolve).
			for _, drv := range d.opts.Drivers {
				bases, _ := drv.BasesInUse(filepath.Join(d.opts.Layout.VMsDir(), e.Name()))
				for _, b := range bases {
					used[b] = true
				}
			}
			continue
		}
		if !e.IsDir() || vm.ValidateName(e.Name()) != nil {
			continue
		}
		dir := d.opts.Layout.InstanceDir(e.Name())
		if inst, err := d.store.Get(e.Name()); err == nil && inst.Spec.BaseImage != "" {
			used[inst.Spec.BaseImage] = true
		}
		for _, drv := range d.opts.Drivers {
			bases, err := drv.BasesInUse(dir)
			if err != nil {
				return nil, fmt.Errorf("vm %s: which base its disk reads: %w", e.Name(), err)
			}
			for _, b := range bases {
				used[b] = true
			}
		}
	}
	return used, nil
}

// Images lists local images, broken ones included, with their warm snapshots.
func (d *Daemon) Images(ctx context.Context) ([]api.Image, error) {
	imgs, err := d.images.Images(ctx)
	if err != nil {
		return nil, err
	}
	for i := range imgs {
		if imgs[i].Path != "" {
			imgs[i].Warm = d.warm.List(ctx, imgs[i].Path)
			for j := range imgs[i].Warm {
				imgs[i].Warm[j].Spare = d.hasSpare(imgs[i].Warm[j].Dir)
			}
		}
	}
	return imgs, nil
}

func (d *Daemon) PullImage(ctx context.Context, req api.PullRequest, progress func(api.Event)) (api.Image, error) {
	img, err := d.images.PullImage(ctx, req, progress)
	return img, hostError(err)
}

func (d *Daemon) ImportImage(ctx context.Context, req api.ImportRequest, progress func(api.Event)) (api.Image, error) {
	if req.Upload != "" { // a client's file, uploaded (remote.go)
		img, err := d.importUpload(ctx, req)
		return img, hostError(err)
	}
	img, err := d.images.ImportImage(ctx, req, progress)
	return img, hostError(err)
}

// RemoveImage removes an image and its warm snapshots, unless a clone's disk
// still reads one (prune takes it when that clone is gone).
func (d *Daemon) RemoveImage(ctx context.Context, name string, arch vm.Arch) ([]api.Image, error) {
	removed, err := d.images.RemoveImage(ctx, name, arch)
	if err != nil {
		return removed, err
	}
	gone := map[string]bool{}
	for _, img := range removed {
		if img.Path != "" && !d.imageNames(img.Path) {
			gone[img.Path] = true
		}
	}
	d.dropSparesOn(gone) // a spare reads the snapshot it was cloned from
	if used, err := d.vmBases(); err == nil && len(gone) > 0 {
		d.warm.Remove(ctx, used, gone, false)
	}
	d.pruneDriverBases(ctx) // copies of its base on other machines (pruneremote.go)
	return removed, nil
}

// PruneImages removes warm snapshots no clone reads whose image is gone or
// that no longer fit this host's QEMU and fvm, then what the image service prunes.
func (d *Daemon) PruneImages(ctx context.Context) (api.PruneResult, error) {
	orphans := map[string]bool{}
	for _, base := range d.warm.Bases() {
		if !d.imageNames(base) {
			orphans[base] = true
		}
	}
	d.dropSparesOn(orphans)
	d.retireStaleSpares(ctx) // a stale snapshot's spare would keep it
	used, err := d.vmBases()
	if err != nil {
		return api.PruneResult{}, fmt.Errorf("prune: %w (nothing was removed)", err)
	}
	removed, freed := d.warm.Remove(ctx, used, orphans, true)
	uploads, ufreed := d.pruneUploads() // uploads no VM names any more (remote.go)
	removed, freed = append(removed, uploads...), freed+ufreed
	layers, lfreed, lerr := d.pruneLayers(ctx)
	removed, freed = append(removed, layers...), freed+lfreed
	res, err := d.images.PruneImages(ctx)
	res.Removed, res.Freed = append(removed, res.Removed...), res.Freed+freed
	res.Removed = append(res.Removed, d.pruneDriverBases(ctx)...)
	res.Kept = d.layersKept()
	err = errors.Join(err, lerr)
	if res.Removed == nil {
		res.Removed = []string{}
	}
	return res, err
}

// imageNames says whether a local image names base.
func (d *Daemon) imageNames(base string) bool {
	imgs, err := d.images.Images(context.Background())
	if err != nil {
		return true // unsure: keep
	}
	for _, img := range imgs {
		if img.Path == base {
			return true
		}
	}
	return false
}

func (d *Daemon) CheckUpdates(ctx context.Context, req api.UpdatesRequest) ([]api.ImageUpdate, error) {
	return d.images.CheckUpdates(ctx, req)
}

func (d *Daemon) Catalog(ctx context.Context) ([]api.CatalogItem, error) {
	return d.images.Catalog(ctx)
}

// layersKept says which snapshot layers prune kept, and who reads them.
func (d *Daemon) layersKept() []string {
	readers, err := d.layerReaders()
	if err != nil || len(readers) == 0 {
		return nil
	}
	var all []string
	for l := range readers {
		all = append(all, l)
	}
	return d.keptNotes(all)
}
