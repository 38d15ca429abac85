package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
)

// importUnverified downloads a URL nobody vouches for (--insecure-skip-verify)
// into a temp file in downloads/ and imports it. image.Fetch needs an expected
// digest, so this plain copy stands in; it still never leaves a partial file
// under a final name, and the import refuses unsafe qcow2 images.
func (s *Service) importUnverified(ctx context.Context, src string, img api.Image, rep *reporter) (_ api.Image, err error) {
	dir := s.opts.Layout.DownloadsDir()
	if err := store.MkdirPrivate(dir); err != nil {
		return api.Image{}, err
	}
	tmp, err := os.CreateTemp(dir, store.TempPrefix+"unverified-*"+PartSuffix)
	if err != nil {
		return api.Image{}, err
	}
	store.LockOpen(tmp) // not stale while we write it
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // gone already when moved into the cache
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return api.Image{}, api.Errorf(api.CodeInvalid, "import %q: %v", src, err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := safeClient(s.opts.HTTPClient).Do(req)
	if err != nil {
		return api.Image{}, fmt.Errorf("import %q: %w", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return api.Image{}, fmt.Errorf("import %q: server answered %s", src, resp.Status)
	}
	total := resp.ContentLength
	rep.download(0, total)
	// Junk is refused after its first bytes, not after the whole transfer.
	head := &diskHead{what: src}
	n, err := CopyContext(ctx, tmp, io.TeeReader(resp.Body, head), func(done int64) { rep.download(done, total) })
	if err == nil && total >= 0 && n != total {
		err = fmt.Errorf("transfer ended at %d of %d bytes", n, total)
	}
	if err == nil {
		err = head.End()
	}
	if errors.Is(err, ErrNotDisk) {
		return api.Image{}, api.Errorf(api.CodeInvalid, "import: %v", err)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return api.Image{}, fmt.Errorf("import %q: %w (nothing was kept)", src, err)
	}
	out, err := s.reg.ImportFile(ctx, tmp.Name(), img.Name, ImportOptions{
		Version: img.Version, Arch: img.Arch, Source: src, Move: true,
	})
	if err != nil {
		return api.Image{}, api.Errorf(api.CodeInvalid, "import %q: %v (nothing was kept)", src, err)
	}
	return out, nil
}
