package image

// Imports of a user's disk (a file or a URL) and removal of local names.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// ImportImage caches the disk at req.Source (an absolute path, or an http(s)
// URL) and registers it. URLs need a checksum unless InsecureSkipVerify is set.
// A local file is opened once and read without holding any lock of the cache.
func (s *Service) ImportImage(ctx context.Context, req api.ImportRequest, progress func(api.Event)) (api.Image, error) {
	src := strings.TrimSpace(req.Source)
	arch, err := parseArch(req.Arch)
	if err != nil {
		return api.Image{}, err
	}
	var want Digest
	if req.Checksum != "" {
		if want, err = ParseDigest(req.Checksum); err != nil {
			return api.Image{}, api.Errorf(api.CodeInvalid, "--checksum: %v", err)
		}
	}
	isURL := isHTTPURL(src)
	if !isURL && !filepath.IsAbs(src) {
		return api.Image{}, api.Errorf(api.CodeInvalid, "import %q: give an absolute file path or an http(s) URL", src)
	}
	name := req.Name
	if name == "" {
		name = s.importName(src)
	}
	if err := ValidateName(name); err != nil {
		return api.Image{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if !isURL {
		img, err := s.reg.ImportFile(ctx, src, name, ImportOptions{Version: req.Version, Arch: arch, Source: src, Checksum: want})
		if err != nil {
			return api.Image{}, inputError(err)
		}
		return img, nil
	}
	if want.IsZero() && !req.InsecureSkipVerify {
		return api.Image{}, api.Errorf(api.CodeInvalid,
			"import %s: no checksum to verify it against: pass --checksum sha256:HEX (or sha512:HEX) as its publisher lists it, or --insecure-skip-verify to trust whatever arrives", src)
	}
	rep := s.reporter(name, arch, progress)
	img := api.Image{Name: name, Version: req.Version, Arch: arch, Source: src}
	if want.IsZero() {
		s.opts.Log.Warn("importing without verification", "url", src, "name", name)
		return s.importUnverified(ctx, src, img, rep)
	}
	img.UpstreamDigest = want.String()
	if cur, err := s.reg.Get(name); err == nil && cur.Source == src && cur.UpstreamDigest == img.UpstreamDigest {
		rep.phase(api.PhaseUpToDate)
		return cur, nil
	}
	dest := s.downloadPath(want, path.Base(urlPath(src)))
	unlock, err := s.pulls.lock(ctx, dest, func() { rep.phase(api.PhaseWaiting) })
	if err != nil {
		return api.Image{}, fmt.Errorf("import %q: %w", src, err)
	}
	defer unlock()
	res, err := s.fetch(ctx, src, dest, want, rep, nil)
	if err != nil {
		return api.Image{}, fmt.Errorf("import: %w", err) // Fetch names the URL
	}
	return s.register(ctx, res, img)
}

// inputError codes an error about a user's file: what is wrong with the file is
// invalid input; a failure of the cache itself (disk full) is the host's.
func inputError(err error) error {
	if errors.Is(err, ErrNotDisk) || errors.Is(err, ErrUnsafeImage) || errors.Is(err, ErrChecksumMismatch) ||
		errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "not a regular file") ||
		strings.Contains(err.Error(), "inspect image") {
		return api.Errorf(api.CodeInvalid, "%v", err)
	}
	return err
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
func (s *Service) importName(src string) string {
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
	name := strings.Trim(importNameRE.ReplaceAllString(strings.ToLower(base), "-"), "-.")
	if len(name) > MaxNameLen-9 {
		name = strings.Trim(name[:MaxNameLen-9], "-.")
	}
	if name == "" {
		name = "image"
	}
	if cur, err := s.reg.Get(name); err == nil && cur.Source != src || err != nil && s.hasEntry(name) {
		h := SHA256.NewHash()
		h.Write([]byte(src))
		name += fmt.Sprintf("-%x", h.Sum(nil)[:4])
	}
	return name
}

var importNameRE = regexp.MustCompile(`[^a-z0-9.]+`)

// RemoveImage removes a local name, or the cached builds of a catalog
// reference, broken entries included. Base disks stay: VMs boot from overlays
// on them; prune frees them (and the derived files of bases no image names).
func (s *Service) RemoveImage(ctx context.Context, name string, arch vm.Arch) ([]api.Image, error) {
	imgs, listErr := s.reg.List()
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
	if len(targets) == 0 && !s.hasEntry(name) {
		ref, err := s.canonicalRef(name)
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
			return nil, api.Errorf(api.CodeNotFound, "image %q is not cached: see `fvm images`", name)
		}
	} else if len(targets) == 0 {
		targets = []api.Image{{Name: name}} // an unreadable entry: remove it all the same
	}
	for _, img := range targets {
		if err := s.reg.Remove(img.Name); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, api.Errorf(api.CodeNotFound, "%v", err)
			}
			return nil, fmt.Errorf("%w (`fvm image rm %s` again once that is fixed)", err, img.Name)
		}
		s.publish(api.Event{Type: api.EventImageRemoved, Image: img.Name, Arch: img.Arch})
	}
	return targets, nil
}
