package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// MaxNameLen bounds local image names (they become file names).
const MaxNameLen = 64

// ErrNotFound means no local image has the name (or its base disk is gone).
var ErrNotFound = errors.New("not found")

const notFoundHint = "list local images with `fvm images`, or build one with `fvm image build debian`"

var imageNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

// ValidateName checks a local image name: lowercase letters, digits, '-' and '.',
// starting and ending with a letter or digit, at most MaxNameLen characters.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("image name is empty: give a name like debian-local")
	case len(name) > MaxNameLen:
		return fmt.Errorf("image name %q is too long (%d characters): use at most %d", name, len(name), MaxNameLen)
	case !imageNameRE.MatchString(name):
		return fmt.Errorf("image name %q is invalid: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit", name)
	}
	return nil
}

// Registry is the local image registry: one JSON file (an api.Image) per image in
// Layout.ImagesDir(), each pointing at a base disk in Layout.BasesDir() named by digest.
// Entries are written atomically; base disks are shared by every entry with the same digest.
type Registry struct{ Layout store.Layout }

func (r Registry) entryPath(name string) string {
	return filepath.Join(r.Layout.ImagesDir(), name+".json")
}

// BasePath is where the base disk with this digest ("sha256:<hex>") and format lives.
func (r Registry) BasePath(digest string, f Format) string {
	return filepath.Join(r.Layout.BasesDir(), strings.Replace(digest, ":", "-", 1)+"."+string(f))
}

// List returns the registered images sorted by name. An entry that cannot be read, or
// whose base disk is gone, is listed with Broken saying why (and how to remove it), so
// one damaged file hides nothing and can be removed with `fvm image rm`.
func (r Registry) List() ([]api.Image, error) {
	ents, err := os.ReadDir(r.Layout.ImagesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var imgs []api.Image
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || store.IsTemp(n) || !strings.HasSuffix(n, ".json") {
			continue // temp files of atomic writes start with '.'
		}
		name := strings.TrimSuffix(n, ".json")
		var img api.Image
		err := store.ReadJSON(filepath.Join(r.Layout.ImagesDir(), n), &img)
		switch {
		case err != nil:
			img = api.Image{Name: name, Broken: fmt.Sprintf("its entry is unreadable (%v): remove it with `fvm image rm %s`", err, name)}
		case img.Name != name || ValidateName(img.Name) != nil || !filepath.IsAbs(img.Path):
			img = api.Image{Name: name, Broken: fmt.Sprintf("its entry %s does not describe it: remove it with `fvm image rm %s`", n, name)}
		default:
			if _, serr := os.Stat(img.Path); serr != nil {
				img.Broken = fmt.Sprintf("its base disk %s is missing: remove it with `fvm image rm %s` and pull, import or build it again", img.Path, name)
			}
		}
		imgs = append(imgs, img)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	return imgs, nil
}

// Get returns the named image. It wraps ErrNotFound when there is no such entry or
// when the entry's base disk has gone from the cache.
func (r Registry) Get(name string) (api.Image, error) {
	if ValidateName(name) != nil {
		return api.Image{}, fmt.Errorf("image %q %w: %s", name, ErrNotFound, notFoundHint)
	}
	var img api.Image
	err := store.ReadJSON(r.entryPath(name), &img)
	if errors.Is(err, fs.ErrNotExist) {
		return api.Image{}, fmt.Errorf("image %q %w: %s", name, ErrNotFound, notFoundHint)
	}
	if err != nil {
		return api.Image{}, fmt.Errorf("image %q: %w", name, err)
	}
	if img.Name != name || !filepath.IsAbs(img.Path) { // the entry's file name is the image's identity (as List says)
		return api.Image{}, fmt.Errorf("image %q: its entry %s does not describe it (it names %q): remove it with `fvm image rm %s`",
			name, name+".json", img.Name, name)
	}
	if _, err := os.Stat(img.Path); err != nil {
		return api.Image{}, fmt.Errorf("image %q %w: its base disk %s is missing (%v): build or import it again",
			name, ErrNotFound, img.Path, err)
	}
	return img, nil
}

// Add registers img under img.Name, replacing an entry of the same name.
func (r Registry) Add(img api.Image) error {
	if err := ValidateName(img.Name); err != nil {
		return err
	}
	if img.Path == "" || !filepath.IsAbs(img.Path) {
		return fmt.Errorf("image %q: base disk path %q must be absolute", img.Name, img.Path)
	}
	if err := store.MkdirPrivate(r.Layout.ImagesDir()); err != nil {
		return fmt.Errorf("image %q: %w", img.Name, err)
	}
	if err := store.WriteJSON(r.entryPath(img.Name), img); err != nil {
		return fmt.Errorf("image %q: save entry: %w", img.Name, err)
	}
	return nil
}

// Remove deletes the named entry. The base disk stays in the cache: VMs made from the
// image boot from overlays on it.
func (r Registry) Remove(name string) error {
	if ValidateName(name) != nil {
		return fmt.Errorf("image %q %w: %s", name, ErrNotFound, notFoundHint)
	}
	err := os.Remove(r.entryPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image %q %w: %s", name, ErrNotFound, notFoundHint)
	}
	if err != nil {
		return fmt.Errorf("remove image %q: %w", name, err)
	}
	return nil
}

// ImportOptions describe the image being imported.
type ImportOptions struct {
	Version string
	Arch    vm.Arch // default amd64
	Source  string  // where it came from (URL, path, "debianbuild:<key>")
	// Move renames src into the cache instead of copying it (src must be a file fvm made,
	// e.g. a build output; it falls back to a copy across filesystems).
	Move bool
	// Checksum, if set, must match the bytes imported (a copy is compared as it is made).
	Checksum Digest
	// Digest, with Move, is src's SHA-256 when it is known already (an upload
	// hashed as it arrived), so it is not read again.
	Digest Digest
}

// ImportFile puts the qcow2 or raw disk at src into the cache, named by its SHA-256,
// and registers it as name. A base with the same digest is reused. A user's file
// is opened once (OpenInput) and inspected, hashed and copied from that descriptor.
// Images that reference other files (qcow2 backing or data files) are refused.
func (r Registry) ImportFile(ctx context.Context, src, name string, opts ImportOptions) (api.Image, error) {
	if err := ValidateName(name); err != nil {
		return api.Image{}, err
	}
	in, err := OpenInput(src)
	if err != nil {
		return api.Image{}, err
	}
	bs := BaseSource{In: in, Want: opts.Checksum, Name: src}
	if opts.Move {
		in.Close() // only inspected: fvm's own file is renamed in
		bs = BaseSource{Move: in.Path, Digest: opts.Digest, Name: opts.Source}
	} else {
		defer in.Close()
	}
	if err := CheckDisk(in.Info); err != nil {
		return api.Image{}, err
	}
	arch := opts.Arch
	if arch == "" {
		arch = vm.AMD64
	}
	img := api.Image{
		Name: name, Version: opts.Version, Arch: arch, CreatedAt: time.Now().UTC().Truncate(time.Second), Source: opts.Source,
	}
	if !opts.Checksum.IsZero() {
		img.UpstreamDigest = opts.Checksum.String()
	}
	_, _, err = r.PutBase(ctx, bs, in.Info.Format, func(path string, digest Digest, kept Info) error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		img.Path, img.Size, img.Digest = path, st.Size(), digest.String()
		img.Format, img.Virtual = string(kept.Format), kept.VirtualSize // the copy kept, as checked
		return r.Add(img)
	})
	if err != nil {
		return api.Image{}, fmt.Errorf("import %q: %w", src, err)
	}
	return img, nil
}
