package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/image"
)

// importUnverified downloads a URL nobody vouches for (--insecure-skip-verify)
// into a temp file in downloads/ and imports it. image.Fetch needs an expected
// digest, so this plain copy stands in; it still never leaves a partial file
// under a final name, and the import refuses unsafe qcow2 images.
func (d *Daemon) importUnverified(ctx context.Context, src string, img api.Image, rep *reporter) (_ api.Image, err error) {
	dir := d.opts.Layout.DownloadsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return api.Image{}, err
	}
	tmp, err := os.CreateTemp(dir, "unverified-*"+image.PartSuffix)
	if err != nil {
		return api.Image{}, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // gone already when moved into the cache
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return api.Image{}, api.Errorf(api.CodeInvalid, "import %s: %v", src, err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := image.DefaultHTTPClient().Do(req)
	if err != nil {
		return api.Image{}, fmt.Errorf("import %s: %w", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return api.Image{}, fmt.Errorf("import %s: server answered %s", src, resp.Status)
	}
	total := resp.ContentLength
	rep.download(0, total)
	n, err := copyCtx(ctx, tmp, resp.Body, func(done int64) { rep.download(done, total) })
	if err == nil && total >= 0 && n != total {
		err = fmt.Errorf("transfer ended at %d of %d bytes", n, total)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return api.Image{}, fmt.Errorf("import %s: %w (nothing was kept)", src, err)
	}
	cacheMu.RLock()
	defer cacheMu.RUnlock()
	out, err := d.images.ImportFile(ctx, tmp.Name(), img.Name, image.ImportOptions{
		Version: img.Version, Arch: img.Arch, Source: src, Move: true,
	})
	if err != nil {
		return api.Image{}, api.Errorf(api.CodeInvalid, "import %s: %v (nothing was kept)", src, err)
	}
	return out, nil
}

// copyCtx copies r to w until EOF or until ctx ends, calling progress (if
// not nil) with the running count.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader, progress func(done int64)) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
			if progress != nil {
				progress(n)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
