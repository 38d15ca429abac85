package daemon

// Images on the host: catalog pulls (implicit in Create), imports, update checks,
// removal and pruning of cached bases. Pulls follow one flow: Resolve the
// reference in the catalog → Locate upstream's current file and checksum →
// Fetch into downloads/ (verified, resumable, locked) → move into bases/ by
// SHA-256 → register under distro-version-arch with upstream's digest and build.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/server"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/vm"
)

var _ server.ImageService = (*Daemon)(nil)

const (
	// progressEvery bounds how often download progress is sent (stream and events).
	progressEvery = 250 * time.Millisecond
)

// Host-wide (one host per state dir) coordination of the image cache.
var (
	// pulls serializes work on one download file: Fetch's own lock ends when the
	// file is complete, but the file is then moved into bases/.
	pulls = newKeyLock()
	// cacheMu orders putting a base in place and registering it (read side)
	// against prune (write side), so prune never sees a base before its entry.
	cacheMu sync.RWMutex
	// pendingBases holds bases resolved for a Create still in progress, whose
	// VM spec (which names the base) may not be saved yet.
	pendingBases sync.Map // path → VM name
)

// catalog is the built-in catalog with the config file's additions and mirrors,
// read on each use so edits to the config file apply without a host restart;
// overrides (from the client's environment) win.
func (d *Daemon) catalog(overrides map[string]string) (*image.Catalog, error) {
	v, err := config.Load(d.opts.Layout)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	cat, err := config.ImageCatalog(v)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if err := cat.SetMirrors(overrides); err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	return cat, nil
}

func hostArch() vm.Arch {
	a, err := vm.ParseArch(runtime.GOARCH)
	if err != nil {
		return vm.AMD64
	}
	return a
}

func parseArch(a vm.Arch) (vm.Arch, error) {
	if a == "" {
		return hostArch(), nil
	}
	p, err := vm.ParseArch(string(a))
	if err != nil {
		return "", api.Errorf(api.CodeInvalid, "%v", err)
	}
	return p, nil
}

// catalogName is the local registry name of a cached catalog image.
func catalogName(e image.Entry) string {
	return strings.ToLower(e.Distro + "-" + e.Version + "-" + string(e.Arch))
}

// unknownImage explains a reference that is neither local nor in the catalog.
// A known distro with an unknown version or arch keeps the catalog's message,
// which lists what exists.
func (d *Daemon) unknownImage(cat *image.Catalog, ref string, err error) error {
	if !errors.Is(err, image.ErrUnknownImage) {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	if strings.Contains(ref, ":") {
		return api.Errorf(api.CodeNotFound, "%v", err)
	}
	return api.Errorf(api.CodeNotFound, "image %q not found: it is no local image (see `fvm images`) and no catalog image (%s; see `fvm images --available`)",
		ref, strings.Join(cat.Names(), ", "))
}

// PullImage fetches the current build of a catalog image. With IfMissing it
// returns a local image of that name, or the cached build, without asking upstream.
func (d *Daemon) PullImage(ctx context.Context, req api.PullRequest, progress func(api.Event)) (api.Image, error) {
	arch, err := parseArch(req.Arch)
	if err != nil {
		return api.Image{}, err
	}
	if req.IfMissing {
		if img, err := d.images.Get(req.Ref); err == nil {
			return img, nil // a local name wins over a catalog reference
		}
	}
	cat, err := d.catalog(req.Mirrors)
	if err != nil {
		return api.Image{}, err
	}
	e, err := cat.Resolve(req.Ref, arch)
	if err != nil {
		if _, lerr := d.images.Get(req.Ref); lerr == nil {
			return api.Image{}, api.Errorf(api.CodeInvalid, "%s is a local image, not one from the catalog: there is nothing to pull", req.Ref)
		} else if d.hasEntry(req.Ref) {
			return api.Image{}, api.Errorf(api.CodeNotFound, "%v", lerr) // e.g. its base disk is gone
		}
		return api.Image{}, d.unknownImage(cat, req.Ref, err)
	}
	if req.IfMissing {
		if img, err := d.images.Get(catalogName(e)); err == nil {
			return img, nil
		}
	}
	return d.pull(ctx, e, progress)
}

// pull asks upstream for e's current build and caches it unless it is cached already.
func (d *Daemon) pull(ctx context.Context, e image.Entry, progress func(api.Event)) (api.Image, error) {
	rep := d.reporter(e.Ref(), e.Arch, progress)
	name := catalogName(e)
	what := fmt.Sprintf("pull %s (%s)", e.Ref(), e.Arch)
	rep.phase(api.PhaseResolving)
	src, err := image.Locate(ctx, nil, e)
	if err != nil {
		prefix := what + ": "
		if strings.HasPrefix(err.Error(), e.Ref()) {
			prefix = "pull " // Locate names the image already
		}
		return api.Image{}, fmt.Errorf("%s%w (mirror %s; change it with images.%s.mirror or %s)",
			prefix, err, e.Mirror, e.Distro, image.MirrorEnv(e.Distro))
	}
	upToDate := func() (api.Image, bool) {
		img, err := d.images.Get(name)
		return img, err == nil && img.UpstreamDigest == src.Digest.String()
	}
	if img, ok := upToDate(); ok {
		rep.phase(api.PhaseUpToDate)
		return img, nil
	}
	dest := d.downloadPath(src.Digest, src.File)
	unlock, err := pulls.lock(ctx, dest, func() { rep.phase(api.PhaseWaiting) })
	if err != nil {
		return api.Image{}, fmt.Errorf("%s: %w", what, err)
	}
	defer unlock()
	if img, ok := upToDate(); ok { // a concurrent pull finished it while we waited
		rep.phase(api.PhaseUpToDate)
		return img, nil
	}
	res, err := d.fetch(ctx, src.URL, dest, src.Digest, rep)
	if err != nil {
		return api.Image{}, fmt.Errorf("%s: %w", what, err)
	}
	img := api.Image{
		Name: name, Ref: e.Ref(), Distro: e.Distro, Version: e.Version, Arch: e.Arch,
		Build: src.Build, UpstreamDigest: src.Digest.String(), Source: src.URL,
	}
	if img, err = d.register(res, img); err != nil {
		return api.Image{}, fmt.Errorf("%s: %w", what, err)
	}
	d.log.Info("image pulled", "ref", e.Ref(), "arch", e.Arch, "build", src.Build, "digest", img.Digest, "resumed", res.Resumed)
	d.events.publish(api.Event{Type: api.EventImagePulled, Image: e.Ref(), Arch: e.Arch})
	return img, nil
}

// downloadPath names a download by the expected digest, so a new upstream build
// never matches an old file, and keeps upstream's file name for people reading
// the cache.
func (d *Daemon) downloadPath(want image.Digest, file string) string {
	file = unsafeChars.ReplaceAllString(path.Base(file), "_")
	if len(file) > 120 {
		file = file[len(file)-120:]
	}
	return filepath.Join(d.opts.Layout.DownloadsDir(), string(want.Algo)+"-"+want.Hex[:32]+"-"+file)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// fetch downloads url to dest, verified; the caller holds pulls' lock on dest.
func (d *Daemon) fetch(ctx context.Context, url, dest string, want image.Digest, rep *reporter) (image.FetchResult, error) {
	res, err := image.Fetch(ctx, image.FetchRequest{
		URL: url, Dest: dest, Digest: want,
		Progress: func(done, total int64) { rep.download(done, total) },
	})
	// Fetch's lock file is only ever taken under our lock: remove it so a
	// failure leaves nothing but (on interruption) the part to resume.
	os.Remove(dest + ".lock")
	if err != nil {
		return res, err
	}
	rep.download(res.Size, res.Size)
	rep.phase(api.PhaseVerified)
	return res, nil
}

// register moves a verified download into bases/ (named by SHA-256) and
// records img under its name, completed from the file.
func (d *Daemon) register(res image.FetchResult, img api.Image) (api.Image, error) {
	format := res.Info.Format
	named := res.Info
	named.Path = img.Source
	if err := image.CheckDisk(named); err != nil {
		os.Remove(res.Path)
		return api.Image{}, fmt.Errorf("%w (deleted)", err)
	}
	cacheMu.RLock()
	defer cacheMu.RUnlock()
	bases := d.opts.Layout.BasesDir()
	if err := os.MkdirAll(bases, 0o755); err != nil {
		return api.Image{}, err
	}
	base := d.images.BasePath(res.FileDigest.String(), format)
	if _, err := os.Stat(base); err == nil {
		os.Remove(res.Path) // the same bytes are cached already
	} else {
		if err := os.Chmod(res.Path, 0o444); err != nil {
			return api.Image{}, err
		}
		if err := os.Rename(res.Path, base); err != nil {
			return api.Image{}, fmt.Errorf("cache %s: %w", img.Source, err)
		}
		syncDir(bases)
	}
	st, err := os.Stat(base)
	if err != nil {
		return api.Image{}, err
	}
	img.Format, img.Path, img.Size, img.Virtual = string(format), base, st.Size(), res.Info.VirtualSize
	img.Digest = res.FileDigest.String()
	img.CreatedAt = time.Now().UTC().Truncate(time.Second)
	if err := d.images.Add(img); err != nil {
		return api.Image{}, err
	}
	return img, nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// localOrPulled resolves a VM's image that is not a path: a local image name
// first, then a catalog reference, pulled when not cached (progress goes to
// the event stream only: the CLI pulls before it creates).
func (d *Daemon) localOrPulled(ctx context.Context, ref string, arch vm.Arch) (api.Image, error) {
	img, lerr := d.images.Get(ref)
	if lerr == nil {
		return img, nil
	}
	if !errors.Is(lerr, image.ErrNotFound) || d.hasEntry(ref) {
		return api.Image{}, api.Errorf(api.CodeNotFound, "%v", lerr) // e.g. its base disk is gone
	}
	pa, err := parseArch(arch)
	if err != nil {
		return api.Image{}, err
	}
	cat, err := d.catalog(nil)
	if err != nil {
		return api.Image{}, err
	}
	e, err := cat.Resolve(ref, pa)
	if err != nil {
		return api.Image{}, d.unknownImage(cat, ref, err)
	}
	if img, err := d.images.Get(catalogName(e)); err == nil {
		return img, nil
	}
	return d.pull(ctx, e, nil)
}

// hasEntry reports whether a local image entry of that name exists, readable or not.
func (d *Daemon) hasEntry(name string) bool {
	if image.ValidateName(name) != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(d.opts.Layout.ImagesDir(), name+".json"))
	return err == nil
}

// markPending keeps prune off a base while vmName is being created from it.
func markPending(base, vmName string) { pendingBases.Store(base, vmName) }

// ImportImage caches the disk at req.Source (an absolute path, or an http(s)
// URL) and registers it. URLs need a checksum unless InsecureSkipVerify is set.
func (d *Daemon) ImportImage(ctx context.Context, req api.ImportRequest, progress func(api.Event)) (api.Image, error) {
	src := strings.TrimSpace(req.Source)
	arch, err := parseArch(req.Arch)
	if err != nil {
		return api.Image{}, err
	}
	var want image.Digest
	if req.Checksum != "" {
		if want, err = image.ParseDigest(req.Checksum); err != nil {
			return api.Image{}, api.Errorf(api.CodeInvalid, "--checksum: %v", err)
		}
	}
	isURL := isHTTPURL(src)
	if !isURL && !filepath.IsAbs(src) {
		return api.Image{}, api.Errorf(api.CodeInvalid, "import %q: give an absolute file path or an http(s) URL", src)
	}
	name := req.Name
	if name == "" {
		name = d.importName(src)
	}
	if err := image.ValidateName(name); err != nil {
		return api.Image{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if !isURL {
		if _, err := os.Stat(src); err != nil {
			return api.Image{}, api.Errorf(api.CodeInvalid, "import %s: %v", src, err)
		}
		if !want.IsZero() {
			if err := verifyFile(ctx, src, want); err != nil {
				return api.Image{}, api.Errorf(api.CodeInvalid, "import %s: %v", src, err)
			}
		}
		cacheMu.RLock()
		defer cacheMu.RUnlock()
		img, err := d.images.ImportFile(ctx, src, name, image.ImportOptions{Version: req.Version, Arch: arch, Source: src})
		if err != nil {
			return api.Image{}, api.Errorf(api.CodeInvalid, "%v", err)
		}
		if !want.IsZero() {
			img.UpstreamDigest = want.String()
			err = d.images.Add(img)
		}
		return img, err
	}
	if want.IsZero() && !req.InsecureSkipVerify {
		return api.Image{}, api.Errorf(api.CodeInvalid,
			"import %s: no checksum to verify it against: pass --checksum sha256:HEX (or sha512:HEX) as its publisher lists it, or --insecure-skip-verify to trust whatever arrives", src)
	}
	rep := d.reporter(name, arch, progress)
	img := api.Image{Name: name, Version: req.Version, Arch: arch, Source: src}
	if want.IsZero() {
		d.log.Warn("importing without verification", "url", src, "name", name)
		return d.importUnverified(ctx, src, img, rep)
	}
	img.UpstreamDigest = want.String()
	if cur, err := d.images.Get(name); err == nil && cur.Source == src && cur.UpstreamDigest == img.UpstreamDigest {
		rep.phase(api.PhaseUpToDate)
		return cur, nil
	}
	dest := d.downloadPath(want, path.Base(urlPath(src)))
	unlock, err := pulls.lock(ctx, dest, func() { rep.phase(api.PhaseWaiting) })
	if err != nil {
		return api.Image{}, fmt.Errorf("import %s: %w", src, err)
	}
	defer unlock()
	res, err := d.fetch(ctx, src, dest, want, rep)
	if err != nil {
		return api.Image{}, fmt.Errorf("import: %w", err) // Fetch names the URL
	}
	return d.register(res, img)
}

func isHTTPURL(s string) bool {
	ls := strings.ToLower(s)
	return strings.HasPrefix(ls, "http://") || strings.HasPrefix(ls, "https://")
}

func urlPath(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Path
	}
	return s
}

// importName derives a registry name from a file or URL name
// ("debian-12-genericcloud-amd64.qcow2" → "debian-12-genericcloud-amd64"). A name
// already taken by another source gets a suffix from a hash of this one.
func (d *Daemon) importName(src string) string {
	base := path.Base(urlPath(src))
	for {
		ext := path.Ext(base)
		switch strings.ToLower(ext) {
		case ".qcow2", ".img", ".raw", ".gz", ".xz", ".zst", ".zstd":
			base = strings.TrimSuffix(base, ext)
			continue
		}
		break
	}
	name := strings.Trim(regexp.MustCompile(`[^a-z0-9.]+`).ReplaceAllString(strings.ToLower(base), "-"), "-.")
	if len(name) > image.MaxNameLen-9 {
		name = strings.Trim(name[:image.MaxNameLen-9], "-.")
	}
	if name == "" {
		name = "image"
	}
	if cur, err := d.images.Get(name); err == nil && cur.Source != src || err != nil && d.hasEntry(name) {
		h := image.SHA256.NewHash()
		h.Write([]byte(src))
		name += fmt.Sprintf("-%x", h.Sum(nil)[:4])
	}
	return name
}

// verifyFile checks a local file against a checksum before it is imported.
func verifyFile(ctx context.Context, p string, want image.Digest) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := want.Algo.NewHash()
	if _, err := copyCtx(ctx, h, f, nil); err != nil {
		return err
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != want.Hex {
		return fmt.Errorf("%w: expected %s, got %s:%s (nothing was imported)", image.ErrChecksumMismatch, want, want.Algo, got)
	}
	return nil
}

// RemoveImage removes a local name, or the cached builds of a catalog
// reference. Base disks stay: VMs boot from overlays on them; prune frees them.
func (d *Daemon) RemoveImage(ctx context.Context, name string, arch vm.Arch) ([]api.Image, error) {
	imgs, listErr := d.images.List()
	if arch != "" {
		var err error
		if arch, err = parseArch(arch); err != nil {
			return nil, err
		}
	}
	var targets []api.Image
	for _, img := range imgs {
		if img.Name == name {
			targets = append(targets, img)
		}
	}
	if len(targets) == 0 && !d.hasEntry(name) {
		ref, err := d.canonicalRef(name)
		if err != nil {
			if listErr != nil {
				return nil, listErr
			}
			return nil, err
		}
		for _, img := range imgs {
			if img.Ref == ref && (arch == "" || img.Arch == arch) {
				targets = append(targets, img)
			}
		}
		if len(targets) == 0 {
			return nil, api.Errorf(api.CodeNotFound, "image %s is not cached: see `fvm images`", name)
		}
	} else if len(targets) == 0 {
		targets = []api.Image{{Name: name}} // an unreadable entry: remove it all the same
	}
	gone := map[string]bool{}
	for _, img := range targets {
		if err := d.images.Remove(img.Name); err != nil {
			return nil, api.Errorf(api.CodeNotFound, "%v", err)
		}
		if img.Path != "" {
			gone[img.Path] = true
		}
		d.events.publish(api.Event{Type: api.EventImageRemoved, Image: img.Name, Arch: img.Arch})
	}
	// Its warm snapshots go with it, unless a clone's disk still reads one (prune takes it later).
	if used, err := d.basesInUse(); err == nil {
		for b := range gone {
			if used[b] {
				delete(gone, b) // another image name or a VM still uses the base
			}
		}
		d.removeSnapshots(used, gone, false)
	}
	return targets, nil
}

// canonicalRef turns debian, debian:bookworm... into the catalog's debian:12.
func (d *Daemon) canonicalRef(name string) (string, error) {
	cat, err := d.catalog(nil)
	if err != nil {
		return "", err
	}
	var lastErr error
	for _, a := range []vm.Arch{hostArch(), vm.AMD64, vm.ARM64} {
		e, err := cat.Resolve(name, a)
		if err == nil {
			return e.Ref(), nil
		}
		if errors.Is(err, image.ErrUnknownImage) {
			return "", api.Errorf(api.CodeNotFound, "image %q not found: see `fvm images`", name)
		}
		lastErr = err
	}
	return "", api.Errorf(api.CodeInvalid, "%v", lastErr)
}

// CheckUpdates compares every cached catalog image with what upstream offers now.
// A failure to reach one upstream is reported in its row, not for the whole table.
func (d *Daemon) CheckUpdates(ctx context.Context, req api.UpdatesRequest) ([]api.ImageUpdate, error) {
	imgs, err := d.images.List()
	if err != nil && len(imgs) == 0 {
		return nil, err
	}
	cat, err := d.catalog(req.Mirrors)
	if err != nil {
		return nil, err
	}
	rows := []api.ImageUpdate{}
	for _, img := range imgs {
		if img.Ref == "" {
			continue // local builds and imports have no upstream to ask
		}
		row := api.ImageUpdate{Name: img.Name, Ref: img.Ref, Arch: img.Arch, CachedBuild: img.Build, CachedDigest: img.UpstreamDigest}
		if r, err := d.checkOne(ctx, cat, img); err != nil {
			row.Error = err.Error()
		} else {
			row.AvailableBuild, row.AvailableDigest, row.Newer = r.Latest.Build, r.Latest.Digest.String(), r.Newer
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (d *Daemon) checkOne(ctx context.Context, cat *image.Catalog, img api.Image) (image.Available, error) {
	e, err := cat.Resolve(img.Ref, img.Arch)
	if err != nil {
		return image.Available{}, err
	}
	var cached image.Digest
	if img.UpstreamDigest != "" {
		if cached, err = image.ParseDigest(img.UpstreamDigest); err != nil {
			return image.Available{}, fmt.Errorf("image %s: recorded digest: %w", img.Name, err)
		}
	}
	return image.CheckUpdate(ctx, nil, e, cached, img.Build)
}

// Catalog lists the releases that can be pulled and which arches are cached.
func (d *Daemon) Catalog(ctx context.Context) ([]api.CatalogItem, error) {
	cat, err := d.catalog(nil)
	if err != nil {
		return nil, err
	}
	imgs, _ := d.images.List()
	cached := map[string][]vm.Arch{}
	for _, img := range imgs {
		if img.Ref != "" {
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

// PruneImages deletes cached bases that no image and no VM uses, and what
// downloads left behind (partial files, finished files never filed, lock
// files) unless a pull is using them.
func (d *Daemon) PruneImages(ctx context.Context) (api.PruneResult, error) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	used, err := d.basesInUse()
	if err != nil {
		return api.PruneResult{}, fmt.Errorf("prune: %w (nothing was removed)", err)
	}
	res := api.PruneResult{Removed: []string{}}
	// Warm snapshots no clone reads: of a base no image names, or no longer current.
	orphans := map[string]bool{}
	for _, s := range d.snapshotsOf("") {
		if info, err := loadSnapshot(s.Dir); err == nil && !d.imageNames(info.Base) {
			orphans[info.Base] = true
		}
	}
	removed, freed := d.removeSnapshots(used, orphans, true)
	res.Removed, res.Freed = append(res.Removed, removed...), freed
	if len(removed) > 0 {
		if used, err = d.basesInUse(); err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
	}
	remove := func(p string, size int64) {
		if err := os.Remove(p); err == nil {
			res.Removed = append(res.Removed, p)
			res.Freed += size
		} else {
			d.log.Warn("prune", "file", p, "err", err)
		}
	}
	bases := d.opts.Layout.BasesDir()
	ents, _ := os.ReadDir(bases)
	for _, e := range ents {
		p := filepath.Join(bases, e.Name())
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || used[p] || d.pending(p) {
			continue
		}
		if strings.HasPrefix(e.Name(), ".") && time.Since(info.ModTime()) < time.Hour {
			continue // an import being written
		}
		remove(p, info.Size())
	}
	dl := d.opts.Layout.DownloadsDir()
	ents, _ = os.ReadDir(dl)
	for _, e := range ents {
		p := filepath.Join(dl, e.Name())
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || pulls.busy(downloadKey(p)) {
			continue
		}
		remove(p, info.Size())
	}
	return res, nil
}

// downloadKey maps a file in downloads/ to the destination its pull locks.
func downloadKey(p string) string {
	for _, suf := range []string{image.PartSuffix, ".unpack", ".lock"} {
		p = strings.TrimSuffix(p, suf)
	}
	return p
}

// pending reports whether a VM is being created from base right now.
func (d *Daemon) pending(base string) bool {
	name, ok := pendingBases.Load(base)
	if !ok {
		return false
	}
	d.mu.Lock()
	e := d.vms[name.(string)]
	creating := e != nil && e.op == "creating"
	d.mu.Unlock()
	if !creating {
		pendingBases.CompareAndDelete(base, name)
	}
	return creating
}

// basesInUse collects the bases named by local images and by VMs: each VM's
// spec and, as ground truth, what its driver says the VM's disk reads (which
// also covers a VM whose spec cannot be read: every driver is asked).
func (d *Daemon) basesInUse() (map[string]bool, error) {
	used := map[string]bool{}
	imgs, err := d.images.List()
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		used[img.Path] = true
	}
	dirs, err := os.ReadDir(d.opts.Layout.VMsDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range dirs {
		if !e.IsDir() {
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

// imageNames says whether a local image names base.
func (d *Daemon) imageNames(base string) bool {
	imgs, err := d.images.List()
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
