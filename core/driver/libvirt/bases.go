package libvirt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
)

// Bases on the libvirt host: uploaded once per digest, checked there, kept
// while a VM needs them.
//
// An upload goes into the base's volume, which counts only once its marker
// exists; the marker is made after the whole volume was read back through
// libvirt and hashed to the digest the host verified. Anything else found there
// (a cut upload, the fvm host killed mid-way, a mismatch) is deleted and
// uploaded again from the start: restartable, and never half-used.

// Progress reports bytes done of total (an upload, then its read-back).
type Progress func(phase string, done, total int64)

// baseSource is a base as the host has it: its content by digest.
type baseSource struct {
	Digest string // sha256:HEX, as the host verified it
	Format string // qcow2 or raw
	Size   int64  // bytes of the file
	Open   func() (io.ReadCloser, error)
}

// ensureBase makes sure the pool holds b, uploading it if needed, and returns
// its volume's name.
func ensureBase(ctx context.Context, v volumes, where string, b baseSource, progress Progress) (string, error) {
	if !strings.HasPrefix(b.Digest, "sha256:") || len(b.Digest) != len("sha256:")+64 {
		return "", fmt.Errorf("base %q: not a sha256 digest", b.Digest)
	}
	vol, marker := baseVolume(b.Digest, b.Format), baseMarker(b.Digest)
	if ok, err := v.exists(ctx, marker); err != nil {
		return "", fmt.Errorf("%s: %w", where, err)
	} else if ok {
		if ok, err := v.exists(ctx, vol); err == nil && ok {
			return vol, nil
		}
		v.remove(ctx, marker) // a marker without its volume: upload again
	}
	if ok, _ := v.exists(ctx, vol); ok { // left by a cut upload
		if err := v.remove(ctx, vol); err != nil {
			return "", fmt.Errorf("%s: remove the incomplete base %s: %w", where, vol, err)
		}
	}
	if avail, err := v.available(ctx); err == nil && avail < uint64(b.Size) {
		return "", fmt.Errorf("%s has %s free, the base %s needs %s: free space there or name another pool (libvirt.pool)",
			where, sizeText(int64(avail)), short(b.Digest), sizeText(b.Size))
	}
	if err := v.create(ctx, volumeXML(vol, "raw", uint64(b.Size), "", "")); err != nil {
		return "", fmt.Errorf("%s: create volume %s: %w", where, vol, err)
	}
	fail := func(err error) (string, error) {
		// Nothing half-made stays: the next run starts again.
		cctx := context.WithoutCancel(ctx)
		return "", errors.Join(err, v.remove(cctx, vol))
	}
	if err := uploadFile(ctx, v, vol, b, progress); err != nil {
		return fail(fmt.Errorf("%s: upload of base %s was cut (%w): nothing of it is kept; run again to upload it anew", where, short(b.Digest), err))
	}
	got, err := hashVolume(ctx, v, vol, b.Size, progress)
	if err != nil {
		return fail(fmt.Errorf("%s: read back base %s: %w", where, short(b.Digest), err))
	}
	if got != b.Digest {
		return fail(fmt.Errorf("%s: base %s reads back as %s: the upload was damaged on the way; nothing of it is kept, run again", where, short(b.Digest), short(got)))
	}
	// libvirt learns the volume's real format (qcow2) and virtual size, which
	// the disks backed by it need, when it refreshes the pool.
	if err := v.refresh(ctx); err != nil {
		return fail(fmt.Errorf("%s: refresh: %w", where, err))
	}
	if err := v.create(ctx, volumeXML(marker, "raw", 0, "", "")); err != nil {
		return fail(fmt.Errorf("%s: mark base %s complete: %w", where, short(b.Digest), err))
	}
	return vol, nil
}

func uploadFile(ctx context.Context, v volumes, vol string, b baseSource, progress Progress) error {
	f, err := b.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	r := &counting{r: f}
	stop := reportEvery(r, "upload", b.Size, progress)
	err = v.upload(ctx, vol, r, uint64(b.Size))
	stop()
	if err == nil && r.n.Load() != b.Size {
		err = fmt.Errorf("%d of %d bytes sent", r.n.Load(), b.Size)
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// hashVolume reads vol back through libvirt and returns its digest.
func hashVolume(ctx context.Context, v volumes, vol string, size int64, progress Progress) (string, error) {
	h := sha256.New()
	w := &countingWriter{w: h}
	stop := reportEvery(w, "verify", size, progress)
	err := v.download(ctx, vol, w)
	stop()
	if err != nil {
		return "", err
	}
	if n := w.n.Load(); n != size {
		return "", fmt.Errorf("read %d of %d bytes", n, size)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

type counter interface{ count() int64 }

type counting struct {
	r io.Reader
	n atomic.Int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
func (c *counting) count() int64 { return c.n.Load() }

type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
func (c *countingWriter) count() int64 { return c.n.Load() }

func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return "sha256:" + d
}

// unusedBases lists the base volumes (and their markers) in names whose digest
// inUse does not hold: what image rm and prune remove from the pool.
func unusedBases(names []string, inUse func(digest string) bool) []string {
	var out []string
	for _, n := range names {
		if !strings.HasPrefix(n, "sha256-") {
			continue
		}
		hexd, _, ok := strings.Cut(strings.TrimPrefix(n, "sha256-"), ".")
		if !ok || len(hexd) != 64 {
			continue
		}
		if !inUse("sha256:" + hexd) {
			out = append(out, n)
		}
	}
	return out
}
