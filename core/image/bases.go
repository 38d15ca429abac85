package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fvmhq/fvm/core/store"
)

// BaseSource is what goes into bases/: either a user's file, copied from the
// descriptor it was inspected through, or a file fvm made itself (a verified
// download, a build output), renamed in.
type BaseSource struct {
	In *Input // copy from this open file (CopyContext, sparse)
	// Move is a file of fvm's to rename into the cache (a copy when it lies on
	// another filesystem); Digest, if set, is its SHA-256, known from writing it.
	Move   string
	Digest Digest
	// Want, if set, is the checksum the bytes must have (--checksum): compared
	// with the bytes copied, so it vouches for exactly what is cached.
	Want Digest
	// Name is the source as the user knows it (a path, a URL), for errors;
	// default In.Path or Move.
	Name string
}

func (s BaseSource) name() string {
	switch {
	case s.Name != "":
		return s.Name
	case s.In != nil:
		return s.In.Path
	}
	return s.Move
}

// cacheLock is the lock file that orders putting bases in place and
// registering them (shared) against prune (exclusive), across processes (the
// host, and `fvm image build` in the CLI).
func (r Registry) cacheLock() string { return filepath.Join(r.Layout.CacheDir, "bases.lock") }

// LockCache takes the cache lock exclusively: nothing enters bases/ meanwhile.
func (r Registry) LockCache() (*store.FileLock, error) {
	if err := store.MkdirPrivate(r.Layout.CacheDir); err != nil {
		return nil, err
	}
	return store.Lock(r.cacheLock())
}

// PutBase is the one way into bases/: it puts src's bytes there named by their
// SHA-256 (reusing a base with the same bytes) and, under the cache lock,
// calls register with the result, so prune never sees a base before the entry
// or spec that names it. A copy is written under a locked temporary name and
// renamed, so bases/ never holds a partial file under a final name. What is
// kept is checked, through one descriptor, right before it is put in place
// (checkKept: a disk of format f, no backing or data file, a sane size):
// register gets that file's Info, never the source's earlier inspection. Bases
// are read-only and private (0400 in a 0700 directory).
func (r Registry) PutBase(ctx context.Context, src BaseSource, f Format, register func(path string, digest Digest, info Info) error) (string, Digest, error) {
	dir := r.Layout.BasesDir()
	if err := store.MkdirPrivate(dir); err != nil {
		return "", Digest{}, err
	}
	tmp, digest := src.Move, src.Digest
	if src.In != nil {
		testHookBeforeCopy(src.In.Path)
		var err error
		if tmp, digest, err = r.copyToTemp(ctx, src.In, src.Want); err != nil {
			return "", Digest{}, err
		}
		defer os.Remove(tmp) // gone already once renamed
	} else if digest.IsZero() {
		var err error
		if digest, err = hashFile(ctx, tmp); err != nil {
			return "", Digest{}, fmt.Errorf("hash %s: %w", tmp, err)
		}
	}
	info, err := checkKept(tmp, src.name(), f)
	if err != nil {
		return "", Digest{}, err
	}
	if err := os.Chmod(tmp, store.ReadOnlyFile); err != nil {
		return "", Digest{}, err
	}
	lock, err := store.LockShared(r.cacheLock())
	if err != nil {
		return "", Digest{}, fmt.Errorf("cache lock: %w", err)
	}
	defer lock.Unlock()
	dst := r.BasePath(digest.String(), f)
	if _, err := os.Stat(dst); err == nil {
		os.Remove(tmp) // the same bytes are cached already
	} else if err := os.Rename(tmp, dst); errors.Is(err, syscall.EXDEV) && src.In == nil {
		// A build on another filesystem: copy it in, then drop the original.
		lock.Unlock()
		in, oerr := OpenInput(tmp)
		if oerr != nil {
			return "", Digest{}, oerr
		}
		defer in.Close()
		p, d, cerr := r.PutBase(ctx, BaseSource{In: in, Name: src.name()}, f, register)
		if cerr == nil {
			os.Remove(tmp)
		}
		return p, d, cerr
	} else if err != nil {
		return "", Digest{}, err
	}
	store.SyncDir(dir)
	info.Path = dst
	if register != nil {
		if err := register(dst, digest, info); err != nil {
			return "", Digest{}, err
		}
	}
	return dst, digest, nil
}

// testHookBeforeCopy runs between a source's inspection and its copy: tests
// rewrite the source there, as a hostile writer could.
var testHookBeforeCopy = func(path string) {}

// copyToTemp copies in to a locked temporary in bases/, hashing the bytes on
// the way (SHA-256, and want's algorithm when set).
func (r Registry) copyToTemp(ctx context.Context, in *Input, want Digest) (_ string, _ Digest, err error) {
	tmp, err := os.CreateTemp(r.Layout.BasesDir(), store.TempPrefix+"import-*")
	if err != nil {
		return "", Digest{}, err
	}
	defer func() {
		tmp.Close()
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if err := store.LockOpen(tmp); err != nil { // whoever cleans temporaries leaves it alone
		return "", Digest{}, err
	}
	h := SHA256.NewHash()
	var w io.Writer = h
	var hw = h
	if !want.IsZero() && want.Algo != SHA256 {
		hw = want.Algo.NewHash()
		w = io.MultiWriter(h, hw)
	}
	src := io.TeeReader(io.NewSectionReader(in.File, 0, in.Size), w)
	if _, err := CopyContext(ctx, tmp, src, nil); err != nil {
		return "", Digest{}, fmt.Errorf("copy %s: %w", in.Path, err)
	}
	if !want.IsZero() {
		if got := hexOf(want.Algo, hw); !got.Equal(want) {
			return "", Digest{}, fmt.Errorf("%w: %s: expected %s, got %s (nothing was imported)", ErrChecksumMismatch, in.Path, want, got)
		}
	}
	if err := tmp.Sync(); err != nil {
		return "", Digest{}, err
	}
	return tmp.Name(), hexOf(SHA256, h), nil
}

func hashFile(ctx context.Context, p string) (Digest, error) {
	f, _, err := store.OpenRegular(p)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	h := SHA256.NewHash()
	if _, err := CopyContext(ctx, h, f, nil); err != nil {
		return Digest{}, err
	}
	return hexOf(SHA256, h), nil
}

// CleanTemps removes fvm's stale temporaries in dir: entries named with
// store.TempPrefix whose writer is gone (no lock held: store.IsStale). The
// host calls it when it starts, so a crash leaves nothing behind for long.
func CleanTemps(dir string) (removed []string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if !store.IsTemp(n) || !e.Type().IsRegular() || strings.HasSuffix(n, ".lock") {
			continue
		}
		p := filepath.Join(dir, n)
		if store.IsStale(p) && os.Remove(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}
