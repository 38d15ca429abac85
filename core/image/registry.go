package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
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

// List returns the registered images sorted by name. Entries that cannot be read are
// left out and reported in the error, so one damaged file does not hide the others.
func (r Registry) List() ([]api.Image, error) {
	ents, err := os.ReadDir(r.Layout.ImagesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var imgs []api.Image
	var errs []error
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".json") {
			continue // temp files of atomic writes start with '.'
		}
		var img api.Image
		if err := store.ReadJSON(filepath.Join(r.Layout.ImagesDir(), n), &img); err != nil {
			errs = append(errs, fmt.Errorf("image entry is unreadable, delete it and import or build the image again: %w", err))
			continue
		}
		imgs = append(imgs, img)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	return imgs, errors.Join(errs...)
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
	if err := os.MkdirAll(r.Layout.ImagesDir(), 0o755); err != nil {
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
}

// ImportFile puts the qcow2 or raw disk at src into the cache, named by its SHA-256,
// and registers it as name. A base with the same digest is reused. The cache never
// holds a partial file under a final name: data goes to a temp file that is renamed.
// Images that reference other files (qcow2 backing or data files) are refused.
func (r Registry) ImportFile(ctx context.Context, src, name string, opts ImportOptions) (api.Image, error) {
	if err := ValidateName(name); err != nil {
		return api.Image{}, err
	}
	info, err := Inspect(src)
	if err != nil {
		return api.Image{}, err
	}
	if err := CheckDisk(info); err != nil {
		return api.Image{}, err
	}
	if err := os.MkdirAll(r.Layout.BasesDir(), 0o755); err != nil {
		return api.Image{}, fmt.Errorf("import %s: %w", src, err)
	}
	var path, digest string
	if opts.Move {
		path, digest, err = r.moveIn(ctx, src, info.Format)
	} else {
		path, digest, err = r.copyIn(ctx, src, info.Format)
	}
	if err != nil {
		return api.Image{}, fmt.Errorf("import %s: %w", src, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return api.Image{}, fmt.Errorf("import %s: %w", src, err)
	}
	arch := opts.Arch
	if arch == "" {
		arch = vm.AMD64
	}
	img := api.Image{
		Name:      name,
		Version:   opts.Version,
		Arch:      arch,
		Format:    string(info.Format),
		Path:      path,
		Size:      st.Size(),
		Virtual:   info.VirtualSize,
		Digest:    digest,
		CreatedAt: time.Now().UTC().Truncate(time.Second),
		Source:    opts.Source,
	}
	if err := r.Add(img); err != nil {
		return api.Image{}, err
	}
	return img, nil
}

// moveIn hashes src in place and renames it to its digest name.
func (r Registry) moveIn(ctx context.Context, src string, f Format) (string, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	_, err = io.Copy(h, ctxReader{ctx, in})
	in.Close()
	if err != nil {
		return "", "", fmt.Errorf("hash: %w", err)
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	dst := r.BasePath(digest, f)
	if _, err := os.Stat(dst); err == nil {
		return dst, digest, os.Remove(src) // same content already cached
	}
	if err := os.Chmod(src, 0o444); err != nil {
		return "", "", err
	}
	err = os.Rename(src, dst)
	if errors.Is(err, syscall.EXDEV) {
		path, digest, err := r.copyIn(ctx, src, f)
		if err == nil {
			os.Remove(src)
		}
		return path, digest, err
	}
	if err != nil {
		return "", "", err
	}
	syncDir(filepath.Dir(dst))
	return dst, digest, nil
}

// copyIn copies src into a temp file in the cache while hashing it, then renames it.
func (r Registry) copyIn(ctx context.Context, src string, f Format) (_ string, _ string, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", "", err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(r.Layout.BasesDir(), ".import-*")
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if err = sparseCopy(tmp, ctxReader{ctx, in}, h); err != nil {
		return "", "", err
	}
	if err = tmp.Chmod(0o444); err != nil {
		return "", "", err
	}
	if err = tmp.Sync(); err != nil {
		return "", "", err
	}
	if err = tmp.Close(); err != nil {
		return "", "", err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	dst := r.BasePath(digest, f)
	if _, serr := os.Stat(dst); serr == nil {
		os.Remove(tmp.Name()) // same content already cached
		return dst, digest, nil
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return "", "", err
	}
	syncDir(filepath.Dir(dst))
	return dst, digest, nil
}

// sparseCopy copies r to f, feeding h, and seeks over all-zero blocks so raw disks
// stay sparse in the cache.
func sparseCopy(f *os.File, r io.Reader, h hash.Hash) error {
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	var size int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			if bytes.Equal(buf[:n], zero[:n]) {
				if _, err := f.Seek(int64(n), io.SeekCurrent); err != nil {
					return err
				}
			} else if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	return f.Truncate(size) // a trailing hole needs the size set explicitly
}

// ctxReader stops a long copy or hash when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
