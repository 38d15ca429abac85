package vz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	qcow2reader "github.com/lima-vm/go-qcow2reader"
	"github.com/lima-vm/go-qcow2reader/convert"
	qimage "github.com/lima-vm/go-qcow2reader/image"
	"golang.org/x/sys/unix"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// RawOf returns the raw image a vz disk is cloned from: the base itself when
// it is raw, else its raw conversion BASE.vz.raw beside it, made once per
// base (digest) in pure Go, sparse. Concurrent callers wait for one
// conversion; a crash leaves only a dot-named temporary that prune removes.
func RawOf(ctx context.Context, b *driver.Base) (raw string, converted time.Duration, err error) {
	base := b.Path
	switch image.Format(b.Format) {
	case image.FormatRaw:
		return base, 0, nil
	case image.FormatQCOW2:
	default:
		return "", 0, fmt.Errorf("base image %s is %q: vz boots qcow2 or raw disk images", base, b.Format)
	}
	// The host checked the base; the header is read again because the
	// converter would follow a backing file named in it (CVE-2023-32684),
	// from the one descriptor the conversion then reads: the bytes checked
	// are the bytes converted.
	src, st, err := store.OpenRegular(base)
	if err != nil {
		return "", 0, fmt.Errorf("base image: %w", err)
	}
	defer src.Close()
	info, err := image.InspectFile(src, base, st.Size())
	if err != nil {
		return "", 0, err
	}
	if err := image.CheckDisk(info); err != nil {
		return "", 0, err
	}
	raw = image.DerivedPath(base, RawSuffix)
	if rawComplete(raw, info.VirtualSize) {
		return raw, 0, nil
	}
	lock, err := store.Lock(filepath.Join(filepath.Dir(raw), "."+filepath.Base(raw)+".lock"))
	if err != nil {
		return "", 0, fmt.Errorf("lock the raw conversion of %s: %w", base, err)
	}
	defer lock.Unlock()
	if rawComplete(raw, info.VirtualSize) { // made while we waited
		return raw, 0, nil
	}
	t0 := time.Now()
	if err := convertToRaw(ctx, src, raw, info.VirtualSize); err != nil {
		return "", 0, fmt.Errorf("convert %s to raw for vz: %w", base, err)
	}
	return raw, time.Since(t0), nil
}

// rawComplete: conversions appear by rename, complete, so a file of the right
// size is a finished one.
func rawComplete(raw string, size int64) bool {
	st, err := os.Stat(raw)
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

// convertToRaw writes the guest-visible bytes of the qcow2 open as src (and
// checked by the caller) to dst through a temporary: unallocated and all-zero
// clusters stay holes (go-qcow2reader's converter, which reads zlib- and
// zstd-compressed clusters and runs several workers).
func convertToRaw(ctx context.Context, src io.ReaderAt, dst string, size int64) error {
	img, err := qcow2reader.OpenWithType(src, qimage.Type(image.FormatQCOW2))
	if err != nil {
		return err
	}
	defer img.Close()
	if err := img.Readable(); err != nil {
		return err
	}
	if img.Size() != size {
		return fmt.Errorf("qcow2 header says %d bytes, the reader %d", size, img.Size())
	}
	return store.WriteAtomic(dst, store.ReadOnlyFile, func(f *os.File) error {
		if err := f.Truncate(size); err != nil {
			return err
		}
		return convert.Convert(ctxWriterAt{ctx, f}, img, convert.Options{})
	})
}

// ctxWriterAt stops a conversion when ctx ends.
type ctxWriterAt struct {
	ctx context.Context
	w   io.WriterAt
}

func (c ctxWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.WriteAt(p, off)
}

// CloneDisk makes dst a copy-on-write clone of raw (APFS clonefile on macOS,
// a reflink on Linux filesystems that have them) or, where the filesystem
// cannot clone, a sparse copy; then grows it to size bytes. It appears by
// rename, complete. cloned says which way it went.
func CloneDisk(ctx context.Context, raw, dst string, size int64) (cloned bool, err error) {
	st, err := os.Stat(raw)
	if err != nil {
		return false, err
	}
	if size < st.Size() {
		return false, fmt.Errorf("--disk %s is smaller than the image's %s: use --disk %s or more",
			vm.FormatSize(size), vm.FormatSize(st.Size()), vm.FormatSize(roundUpGiB(st.Size())))
	}
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp")
	os.Remove(tmp)
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	cloned, err = cloneFile(raw, tmp)
	if err != nil && !errors.Is(err, errNoClone) {
		return false, fmt.Errorf("clone %s: %w", raw, err)
	}
	if !cloned {
		if err = sparseCopy(ctx, raw, tmp); err != nil {
			return false, fmt.Errorf("copy %s: %w", raw, err)
		}
	}
	if err = os.Chmod(tmp, store.PrivateFile); err != nil { // a clone keeps the base's 0400
		return false, err
	}
	if err = os.Truncate(tmp, size); err != nil { // the guest's growpart fills it
		return false, fmt.Errorf("grow disk to %s: %w", vm.FormatSize(size), err)
	}
	if err = os.Rename(tmp, dst); err != nil {
		return false, err
	}
	return cloned, nil
}

// errNoClone means the filesystem cannot clone: copy instead.
var errNoClone = errors.New("filesystem cannot clone files")

// sparseCopy copies src to a new file dst, writing only the data regions
// (SEEK_DATA/SEEK_HOLE, where the filesystem reports them) and, within them,
// only blocks that are not all zero, so the copy stays as sparse as the source.
func sparseCopy(ctx context.Context, src, dst string) error {
	in, st, err := store.OpenRegular(src)
	if err != nil {
		return err
	}
	defer in.Close()
	size := st.Size()
	return writeNew(dst, func(out *os.File) error {
		buf := make([]byte, 1<<20)
		zero := make([]byte, len(buf))
		for off := int64(0); off < size; {
			start, end, err := dataRegion(in, off, size)
			if err != nil {
				return err
			}
			if start >= size {
				break
			}
			for pos := start; pos < end; {
				if err := ctx.Err(); err != nil {
					return err
				}
				n := int(min(int64(len(buf)), end-pos))
				if _, err := in.ReadAt(buf[:n], pos); err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if !bytes.Equal(buf[:n], zero[:n]) {
					if _, err := out.WriteAt(buf[:n], pos); err != nil {
						return err
					}
				}
				pos += int64(n)
			}
			off = end
		}
		return out.Truncate(size)
	})
}

// dataRegion returns the next region holding data at or after off; a
// filesystem without hole reporting yields the rest of the file.
func dataRegion(f *os.File, off, size int64) (start, end int64, err error) {
	fd := int(f.Fd())
	start, err = unix.Seek(fd, off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) { // only a hole from off to the end
		return size, size, nil
	}
	if err != nil {
		return off, size, nil
	}
	end, err = unix.Seek(fd, start, unix.SEEK_HOLE)
	if err != nil || end > size {
		end = size
	}
	return start, end, nil
}

// writeNew creates dst (which must not exist), lets write fill it and syncs it;
// on failure dst is removed.
func writeNew(dst string, write func(*os.File) error) (err error) {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if err = write(out); err != nil {
		return err
	}
	return out.Sync()
}

func roundUpGiB(n int64) int64 { return (n + 1<<30 - 1) &^ (1<<30 - 1) }
