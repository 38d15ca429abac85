package image

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestImportFIFONeverBlocks: a FIFO is refused at once (O_NONBLOCK + fstat),
// without a reader ever waiting on it.
func TestImportFIFONeverBlocks(t *testing.T) {
	r := testRegistry(t)
	fifo := filepath.Join(t.TempDir(), "disk.qcow2")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.ImportFile(context.Background(), fifo, "fifo", ImportOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file (a FIFO)") {
			t.Fatalf("import of a FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("import of a FIFO blocked")
	}
}

// TestInputOpenedOnce: the file inspected is the file copied, even when the
// path is swapped for a symlink to a qcow2 with a backing file right after it
// was opened; and a symlink swapped in before the open is refused.
func TestInputOpenedOnce(t *testing.T) {
	dir := t.TempDir()
	good, wantDigest := rawDisk(t, dir)
	evil := filepath.Join(dir, "evil.qcow2")
	os.WriteFile(evil, qcow2Header(1<<20, "/etc/passwd", ""), 0o644)

	in, err := OpenInput(good)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	os.Remove(good) // the swap: the path now names the evil file
	if err := os.Symlink(evil, good); err != nil {
		t.Fatal(err)
	}
	r := testRegistry(t)
	_, digest, err := r.PutBase(context.Background(), BaseSource{In: in}, in.Info.Format, nil)
	if err != nil || digest.String() != wantDigest {
		t.Fatalf("PutBase after the swap: %v %s, want the bytes that were inspected (%s)", err, digest, wantDigest)
	}
	// Imported by its (now symlinked) path, the evil file is what is inspected and refused.
	if _, err := r.ImportFile(context.Background(), good, "evil", ImportOptions{}); !errors.Is(err, ErrUnsafeImage) {
		t.Fatalf("import through the symlink: %v, want ErrUnsafeImage", err)
	}
}

// TestImportChecksumIsOfCopiedBytes: --checksum is compared with the bytes
// copied into the cache; a mismatch leaves nothing.
func TestImportChecksumIsOfCopiedBytes(t *testing.T) {
	r := testRegistry(t)
	src, digest := rawDisk(t, t.TempDir())
	want, _ := ParseDigest(digest)
	img, err := r.ImportFile(context.Background(), src, "ok", ImportOptions{Checksum: want})
	if err != nil || img.UpstreamDigest != digest || img.Digest != digest {
		t.Fatalf("import with the right checksum: %+v %v", img, err)
	}
	wrong, _ := ParseDigest("sha256:" + strings.Repeat("0", 64))
	if _, err := r.ImportFile(context.Background(), src, "bad", ImportOptions{Checksum: wrong}); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("import with a wrong checksum: %v", err)
	}
	if _, err := r.Get("bad"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a mismatching import registered the image")
	}
	assertNoTemp(t, r.Layout.BasesDir())
}

// TestQCOW2HeadersRefused: zero size, encryption, truncated tables.
func TestQCOW2HeadersRefused(t *testing.T) {
	be := binary.BigEndian
	enc := qcow2Header(1<<20, "", "")
	be.PutUint32(enc[32:], 2) // LUKS
	trunc := qcow2Header(1<<20, "", "")
	be.PutUint64(trunc[40:], 1<<30) // L1 table far beyond the file
	small := qcow2Header(1<<40, "", "")
	be.PutUint32(small[36:], 1) // 1 L1 entry for 1 TiB
	for name, tc := range map[string]struct {
		hdr  []byte
		want string
		err  error
	}{
		"zero-size": {qcow2Header(0, "", ""), "virtual size 0", ErrNotDisk},
		"encrypted": {enc, "encrypted qcow2", ErrUnsafeImage},
		"truncated": {trunc, "truncated: its L1 table ends at byte", ErrNotDisk},
		"l1-short":  {small, "L1 table has 1 entries, 2048 needed", ErrNotDisk},
	} {
		t.Run(name, func(t *testing.T) {
			r := testRegistry(t)
			p := writeFile(t, name+".qcow2", tc.hdr)
			_, err := r.ImportFile(context.Background(), p, "x", ImportOptions{})
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import: %v, want %v with %q", err, tc.err, tc.want)
			}
		})
	}
}
