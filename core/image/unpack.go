package image

// Finishing a verified download: decompression (bounded, stopped at once when
// the content is no disk), the safety check of the image, the rename into place.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/store"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// finish checks the verified download (Check), decompresses it if needed,
// checks the image is safe and renames it into place. A compressed download
// that fails to unpack (disk full, a bomb over the cap, Ctrl-C) is kept,
// verified, for the next attempt.
func (f *fetcher) finish(ctx context.Context) (res FetchResult, err error) {
	res = FetchResult{Path: f.req.Dest, Digest: f.req.Digest, FileDigest: hexOf(SHA256, f.sum256), Downloaded: true, Resumed: f.resumed}
	final := f.part
	keep := false
	defer func() {
		if err != nil {
			if !keep {
				os.Remove(f.part)
			}
			if final != f.part {
				os.Remove(final)
			}
		}
	}()
	if f.req.Check != nil {
		if err := f.req.Check(f.part); err != nil {
			return res, fmt.Errorf("download %q: %w (the file was deleted)", f.req.URL, err)
		}
	}
	format, err := detectFile(f.part)
	if err != nil {
		return res, fmt.Errorf("download %q: %w", f.req.URL, err)
	}
	if format.Compressed() {
		verified := f.req.Dest + VerifiedSuffix
		if err := os.Rename(f.part, verified); err != nil {
			return res, fmt.Errorf("download %q: %w", f.req.URL, err)
		}
		f.part, keep = verified, true
		final = f.req.Dest + ".unpack" + PartSuffix
		d, err := decompress(ctx, f.part, final, format, f.req.MaxUnpacked, f.req.URL)
		if errors.Is(err, ErrNotDisk) {
			keep = false // verified, but no disk inside: nothing to unpack again
			return res, fmt.Errorf("download %q: %w", f.req.URL, err)
		}
		if err != nil {
			return res, fmt.Errorf("download %q: decompress %s: %w (the verified download is kept: trying again unpacks it without downloading)", f.req.URL, format, err)
		}
		res.FileDigest, res.Decompressed = d, format
		keep = false
	}
	info, err := Inspect(final)
	if err != nil {
		return res, fmt.Errorf("download %q: %w", f.req.URL, err)
	}
	info.Path = f.req.URL // name the source in errors, not the temp file
	if err := CheckSafe(info); err != nil {
		return res, err
	}
	info.Path = f.req.Dest
	res.Info = info
	if err := os.Rename(final, f.req.Dest); err != nil {
		return res, fmt.Errorf("download %q: %w", f.req.URL, err)
	}
	if final != f.part {
		os.Remove(f.part)
	}
	store.SyncDir(filepath.Dir(f.req.Dest))
	if st, err := os.Stat(f.req.Dest); err == nil {
		res.Size = st.Size()
	}
	return res, nil
}

func detectFile(path string) (Format, error) {
	fh, _, err := store.OpenRegular(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	return DetectFormat(fh)
}

// ErrTooLarge means decompressed content went past its cap.
var ErrTooLarge = errors.New("decompressed content is larger than allowed")

// decompress writes the decompressed content of src to dst (sparse, fsynced)
// and returns its SHA-256. It stops when ctx ends, at once when the content's
// first bytes are neither a qcow2 header nor a partition table (ErrNotDisk,
// naming what as the source), and at the cap: a qcow2 declares its virtual
// size, which bounds its file; other content is bounded by max.
func decompress(ctx context.Context, src, dst string, format Format, max int64, what string) (Digest, error) {
	in, _, err := store.OpenRegular(src)
	if err != nil {
		return Digest{}, err
	}
	defer in.Close()
	var r io.Reader
	switch format {
	case FormatGzip:
		gz, err := gzip.NewReader(in)
		if err != nil {
			return Digest{}, err
		}
		defer gz.Close()
		r = gz
	case FormatXZ:
		if r, err = xz.NewReader(in); err != nil {
			return Digest{}, err
		}
	case FormatZstd:
		zr, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return Digest{}, err
		}
		defer zr.Close()
		r = zr
	default:
		return Digest{}, fmt.Errorf("unsupported compression %q", format)
	}
	// The head says what the content is: no disk, no unpacking; a qcow2 is
	// held to what it declares.
	head := make([]byte, headLen)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Digest{}, err
	}
	head = head[:n]
	if err := checkHead(head, what+" (unpacked)", false); err != nil {
		return Digest{}, err
	}
	limit := max
	if len(head) >= 32 && bytes.HasPrefix(head, qcow2Magic) {
		declared := int64(binary.BigEndian.Uint64(head[24:32]))
		if bound := declared + declared/64 + 64<<20; declared >= 0 && bound > 0 && bound < limit {
			limit = bound // data plus its L2/refcount tables, with room to spare
		}
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, store.PrivateFile)
	if err != nil {
		return Digest{}, err
	}
	h := SHA256.NewHash()
	body := io.TeeReader(io.MultiReader(bytes.NewReader(head), &capReader{r: r, left: limit - int64(len(head)), limit: limit}), h)
	_, err = CopyContext(ctx, out, body, nil)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return Digest{}, err
	}
	return hexOf(SHA256, h), nil
}

// capReader fails once more than limit bytes come out of r.
type capReader struct {
	r           io.Reader
	left, limit int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, fmt.Errorf("%w: it passed %s (set by the content's own declared size, or images.maxUnpacked)", ErrTooLarge, formatBytes(c.limit))
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, fmt.Errorf("%w: it passed %s (set by the content's own declared size, or images.maxUnpacked)", ErrTooLarge, formatBytes(c.limit))
	}
	return n, err
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// CleanStaleParts removes *.part files in dir untouched for longer than age:
// leftovers of downloads nobody will resume. Errors are ignored (best effort).
func CleanStaleParts(dir string, age time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-age)
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), PartSuffix) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
