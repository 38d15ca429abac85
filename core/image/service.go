package image

// The image service: catalog pulls (implicit in a VM's create), imports, update
// checks, removal and pruning of cached bases. Pulls follow one flow: Resolve the
// reference in the catalog → Locate upstream's current file and checksum (signed
// where upstream signs: trust.go) → Fetch into downloads/ (verified, resumable,
// locked) → PutBase into bases/ by SHA-256 → register under distro-version-arch
// with upstream's digest and build. The host (core/daemon) owns one Service.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Layout store.Layout
	Log    *slog.Logger
	// Catalog returns the catalog with the user's additions and mirrors (the
	// config file, read on each use), with overrides (from the client's
	// environment) applied on top. Default: the built-in catalog.
	Catalog func(o Overrides) (*Catalog, error)
	// Publish sends an event to the host's subscribers (may be nil).
	Publish func(api.Event)
	// BasesInUse reports the bases VMs read (their specs and disks), for prune.
	BasesInUse func() (map[string]bool, error)
	// HTTPClient fetches indexes and images (default DefaultHTTPClient).
	HTTPClient *http.Client
	// Keys verify upstream signatures (default EmbeddedKeyring; tests use their own).
	Keys KeySource
	// MaxUnpacked caps what a compressed download may decompress to when its
	// content declares no size (default DefaultMaxUnpacked).
	MaxUnpacked int64
}

// Service is the host's image cache. Its locks are its own: one Service per
// state directory (one host), plus a file lock across processes (bases.go).
type Service struct {
	opts ServiceOptions
	reg  Registry
	// pulls serializes work on one download file: Fetch's own lock ends when the
	// file is complete, but the file is then moved into bases/.
	pulls *keyLock
	// held counts the bases resolved for VM creates still in progress, whose
	// VM spec (which names the base) may not be saved yet: prune skips them.
	mu   sync.Mutex
	held map[string]int
}

// NewService returns the image service over opts.Layout.
func NewService(opts ServiceOptions) *Service {
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Catalog == nil {
		opts.Catalog = func(o Overrides) (*Catalog, error) { return o.Apply(Builtin()) }
	}
	if opts.Keys == nil {
		opts.Keys = EmbeddedKeyring
	}
	if opts.BasesInUse == nil {
		opts.BasesInUse = func() (map[string]bool, error) { return map[string]bool{}, nil }
	}
	if opts.MaxUnpacked <= 0 {
		opts.MaxUnpacked = DefaultMaxUnpacked
	}
	return &Service{opts: opts, reg: Registry{Layout: opts.Layout}, pulls: newKeyLock(), held: map[string]int{}}
}

// Registry is the service's registry of local images.
func (s *Service) Registry() Registry { return s.reg }

func (s *Service) publish(ev api.Event) {
	if s.opts.Publish != nil {
		s.opts.Publish(ev)
	}
}

// Overrides are the mirrors and index hosts a request brings from the
// client's environment (they win over the host's config).
type Overrides struct {
	Mirrors, Indexes map[string]string
}

// Apply sets o's mirrors and indexes on c.
func (o Overrides) Apply(c *Catalog) (*Catalog, error) {
	if err := c.SetMirrors(o.Mirrors); err != nil {
		return nil, err
	}
	if err := c.SetIndexes(o.Indexes); err != nil {
		return nil, err
	}
	return c, nil
}

// catalog is the catalog with overrides, errors coded for the API.
func (s *Service) catalog(overrides Overrides) (*Catalog, error) {
	cat, err := s.opts.Catalog(overrides)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	}
	return cat, nil
}

// CleanStale removes what a crash can leave in the cache: temporaries of
// imports and downloads whose writer is gone. The host calls it at start.
func (s *Service) CleanStale() []string {
	var out []string
	for _, dir := range []string{s.opts.Layout.BasesDir(), s.opts.Layout.DownloadsDir(), s.opts.Layout.ImagesDir()} {
		out = append(out, CleanTemps(dir)...)
	}
	return out
}

func hostArch() vm.Arch { return vm.HostArch() }

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
func catalogName(e Entry) string {
	return strings.ToLower(e.Distro + "-" + e.Version + "-" + string(e.Arch))
}

// unknownImage explains a reference that is neither local nor in the catalog.
// A known distro with an unknown version or arch keeps the catalog's message,
// which lists what exists.
func unknownImage(cat *Catalog, ref string, err error) error {
	if !errors.Is(err, ErrUnknownImage) {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	if strings.Contains(ref, ":") {
		return api.Errorf(api.CodeNotFound, "%v", err)
	}
	return api.Errorf(api.CodeNotFound, "image %q not found: it is no local image (see `fvm images`) and no catalog image (%s; see `fvm images --available`)",
		ref, strings.Join(cat.Names(), ", "))
}

// Images lists local images, broken ones included (api.Image.Broken), and the
// derived files of each base counted in its size (derived.go).
func (s *Service) Images(ctx context.Context) ([]api.Image, error) {
	imgs, err := s.reg.List()
	if err != nil {
		return nil, err
	}
	for i := range imgs {
		for _, f := range s.derivedFiles(imgs[i]) {
			if st, err := os.Stat(f); err == nil {
				imgs[i].Size += st.Size()
			}
		}
	}
	if imgs == nil {
		imgs = []api.Image{}
	}
	return imgs, nil
}

// PullImage fetches the current build of a catalog image. With IfMissing it
// returns a local image of that name, or the cached build, without asking upstream.
func (s *Service) PullImage(ctx context.Context, req api.PullRequest, progress func(api.Event)) (api.Image, error) {
	arch, err := parseArch(req.Arch)
	if err != nil {
		return api.Image{}, err
	}
	if req.IfMissing {
		if img, err := s.reg.Get(req.Ref); err == nil {
			return img, nil // a local name wins over a catalog reference
		}
	}
	cat, err := s.catalog(Overrides{req.Mirrors, req.Indexes})
	if err != nil {
		return api.Image{}, err
	}
	e, err := cat.Resolve(req.Ref, arch)
	if err != nil {
		if _, lerr := s.reg.Get(req.Ref); lerr == nil {
			return api.Image{}, api.Errorf(api.CodeInvalid, "%q is a local image, not one from the catalog: there is nothing to pull", req.Ref)
		} else if s.hasEntry(req.Ref) {
			return api.Image{}, api.Errorf(api.CodeNotFound, "%v", lerr) // e.g. its base disk is gone
		}
		return api.Image{}, unknownImage(cat, req.Ref, err)
	}
	if req.IfMissing {
		if img, err := s.reg.Get(catalogName(e)); err == nil {
			return img, nil
		}
	}
	return s.pull(ctx, e, progress)
}

// pull asks upstream for e's current build and caches it unless it is cached already.
func (s *Service) pull(ctx context.Context, e Entry, progress func(api.Event)) (api.Image, error) {
	rep := s.reporter(e.Ref(), e.Arch, progress)
	name := catalogName(e)
	what := fmt.Sprintf("pull %s (%s)", e.Ref(), e.Arch)
	rep.phase(api.PhaseResolving)
	src, err := LocateWith(ctx, s.opts.HTTPClient, e, s.opts.Keys)
	if err != nil {
		prefix := what + ": "
		if strings.HasPrefix(err.Error(), e.Ref()) {
			prefix = "pull " // Locate names the image already
		}
		return api.Image{}, fmt.Errorf("%s%w (mirror %s; change it with images.%s.mirror or %s)",
			prefix, err, e.Mirror, e.Distro, MirrorEnv(e.Distro))
	}
	upToDate := func() (api.Image, bool) {
		img, err := s.reg.Get(name)
		return img, err == nil && img.UpstreamDigest == src.Digest.String()
	}
	if img, ok := upToDate(); ok {
		rep.phase(api.PhaseUpToDate)
		return img, nil
	}
	dest := s.downloadPath(src.Digest, src.File)
	unlock, err := s.pulls.lock(ctx, dest, func() { rep.phase(api.PhaseWaiting) })
	if err != nil {
		return api.Image{}, fmt.Errorf("%s: %w", what, err)
	}
	defer unlock()
	if img, ok := upToDate(); ok { // a concurrent pull finished it while we waited
		rep.phase(api.PhaseUpToDate)
		return img, nil
	}
	res, err := s.fetch(ctx, src.URL, dest, src.Digest, rep, src.ImageSig)
	if err != nil {
		return api.Image{}, fmt.Errorf("%s: %w", what, err)
	}
	img := api.Image{
		Name: name, Ref: e.Ref(), Distro: e.Distro, Version: e.Version, Arch: e.Arch,
		Build: src.Build, UpstreamDigest: src.Digest.String(), Source: src.URL,
	}
	if img, err = s.register(ctx, res, img); err != nil {
		return api.Image{}, fmt.Errorf("%s: %w", what, err)
	}
	s.opts.Log.Info("image pulled", "ref", e.Ref(), "arch", e.Arch, "build", src.Build, "digest", img.Digest, "resumed", res.Resumed, "trust", src.Trust)
	s.publish(api.Event{Type: api.EventImagePulled, Image: e.Ref(), Arch: e.Arch})
	return img, nil
}

// downloadPath names a download by the expected digest, so a new upstream build
// never matches an old file, and keeps upstream's file name for people reading
// the cache.
func (s *Service) downloadPath(want Digest, file string) string {
	file = unsafeChars.ReplaceAllString(path.Base(file), "_")
	if len(file) > 120 {
		file = file[len(file)-120:]
	}
	return filepath.Join(s.opts.Layout.DownloadsDir(), string(want.Algo)+"-"+want.Hex[:32]+"-"+file)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// fetch downloads url to dest, verified; the caller holds pulls' lock on dest.
// check, when set, verifies the finished download further (an image's signature).
func (s *Service) fetch(ctx context.Context, url, dest string, want Digest, rep *reporter, check func(string) error) (FetchResult, error) {
	res, err := Fetch(ctx, FetchRequest{
		URL: url, Dest: dest, Digest: want, HTTPClient: s.opts.HTTPClient, Check: check, MaxUnpacked: s.opts.MaxUnpacked,
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
func (s *Service) register(ctx context.Context, res FetchResult, img api.Image) (api.Image, error) {
	named := res.Info
	named.Path = img.Source
	if err := CheckDisk(named); err != nil {
		os.Remove(res.Path)
		return api.Image{}, fmt.Errorf("%w (deleted)", err)
	}
	_, _, err := s.reg.PutBase(ctx, BaseSource{Move: res.Path, Digest: res.FileDigest, Name: img.Source}, res.Info.Format, func(base string, digest Digest, kept Info) error {
		st, err := os.Stat(base)
		if err != nil {
			return err
		}
		img.Format, img.Path, img.Size, img.Virtual = string(kept.Format), base, st.Size(), kept.VirtualSize
		img.Digest = digest.String()
		img.CreatedAt = time.Now().UTC().Truncate(time.Second)
		return s.reg.Add(img)
	})
	if errors.Is(err, ErrNotDisk) || errors.Is(err, ErrUnsafeImage) {
		os.Remove(res.Path) // never a disk fvm would boot: not kept for a retry either
		return api.Image{}, fmt.Errorf("%w (deleted)", err)
	}
	if err != nil {
		return api.Image{}, fmt.Errorf("cache %q: %w", img.Source, err)
	}
	return img, nil
}

// Resolve turns a VM's image (an absolute file path, a local image name or a
// catalog reference, pulled when not cached) into a cached base, the one
// resolution of a create. Local names win over catalog references. The base is
// held (prune skips it) until release is called, once the VM's spec names it.
func (s *Service) Resolve(ctx context.Context, ref string, arch vm.Arch) (img api.Image, release func(), err error) {
	switch {
	case strings.TrimSpace(ref) == "": // an invalid request, not a missing image
		return api.Image{}, nil, api.Errorf(api.CodeInvalid, "no image given: name one (e.g. debian-local, see `fvm images`), or --iso PATH to install from an ISO")
	case strings.ContainsRune(ref, '/') && !strings.HasPrefix(ref, "/") && !isHTTPURL(ref):
		return api.Image{}, nil, api.Errorf(api.CodeInvalid, "image %q is neither a name nor an absolute path: give the file's absolute path", ref)
	case strings.HasPrefix(ref, "/"):
		// Held from the moment the base is in place (under the cache lock).
		img, err = s.reg.ImportBase(ctx, ref, func(base string) { release = s.hold(base) })
		if err != nil {
			return api.Image{}, nil, inputError(fmt.Errorf("image %q: %w", ref, err))
		}
		return img, release, nil
	case isHTTPURL(ref):
		return api.Image{}, nil, api.Errorf(api.CodeInvalid, "image %q: import a URL first: `fvm image import URL --name NAME --checksum sha256:HEX`", ref)
	default:
		if img, err = s.localOrPulled(ctx, ref, arch); err != nil {
			return api.Image{}, nil, err
		}
	}
	return img, s.hold(img.Path), nil
}

// hold keeps prune off base until the returned release is called.
func (s *Service) hold(base string) func() {
	s.mu.Lock()
	s.held[base]++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.held[base]--; s.held[base] <= 0 {
				delete(s.held, base)
			}
			s.mu.Unlock()
		})
	}
}

func (s *Service) isHeld(base string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[base] > 0
}

// localOrPulled resolves a VM's image that is not a path: a local image name
// first, then a catalog reference, pulled when not cached (progress goes to
// the event stream only: the CLI pulls before it creates).
func (s *Service) localOrPulled(ctx context.Context, ref string, arch vm.Arch) (api.Image, error) {
	img, lerr := s.reg.Get(ref)
	if lerr == nil {
		return img, nil
	}
	if !errors.Is(lerr, ErrNotFound) || s.hasEntry(ref) {
		return api.Image{}, api.Errorf(api.CodeNotFound, "%v", lerr) // e.g. its base disk is gone
	}
	pa, err := parseArch(arch)
	if err != nil {
		return api.Image{}, err
	}
	cat, err := s.catalog(Overrides{})
	if err != nil {
		return api.Image{}, err
	}
	e, err := cat.Resolve(ref, pa)
	if err != nil {
		return api.Image{}, unknownImage(cat, ref, err)
	}
	if img, err := s.reg.Get(catalogName(e)); err == nil {
		return img, nil
	}
	return s.pull(ctx, e, nil)
}

// hasEntry reports whether a local image entry of that name exists, readable or not.
func (s *Service) hasEntry(name string) bool {
	if ValidateName(name) != nil {
		return false
	}
	_, err := os.Stat(s.reg.entryPath(name))
	return err == nil
}

// canonicalRef turns debian, debian:bookworm... into the catalog's debian:12.
func (s *Service) canonicalRef(name string) (string, error) {
	cat, err := s.catalog(Overrides{})
	if err != nil {
		return "", err
	}
	var lastErr error
	for _, a := range []vm.Arch{hostArch(), vm.AMD64, vm.ARM64} {
		e, err := cat.Resolve(name, a)
		if err == nil {
			return e.Ref(), nil
		}
		if errors.Is(err, ErrUnknownImage) {
			return "", api.Errorf(api.CodeNotFound, "image %q not found: see `fvm images`", name)
		}
		lastErr = err
	}
	return "", api.Errorf(api.CodeInvalid, "%v", lastErr)
}
