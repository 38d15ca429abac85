package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pkg/sftp"
)

// Copies between this machine and a VM over SFTP, with `docker cp`'s rules:
// a file goes to DST, or into DST when DST is a directory (or ends in /); a
// directory goes into DST as DST/NAME when DST exists, becomes DST when it does
// not, and SRC/. copies only what is inside. Modes and modification times are
// kept; symbolic links are copied as links.

// CopyProgress is told the bytes copied so far and the total.
type CopyProgress func(done, total int64)

// CopyStats says what a copy did.
type CopyStats struct {
	Files, Dirs, Links int
	Bytes              int64
}

// fsys is one side of a copy: this machine or the VM.
type fsys interface {
	Lstat(p string) (fs.FileInfo, error)
	Stat(p string) (fs.FileInfo, error)
	ReadDir(p string) ([]fs.FileInfo, error)
	Open(p string) (io.ReadCloser, error)
	Create(p string, mode fs.FileMode) (io.WriteCloser, error)
	Mkdir(p string) error
	Symlink(target, p string) error
	ReadLink(p string) (string, error)
	Chmod(p string, mode fs.FileMode) error
	Chtimes(p string, fi fs.FileInfo) error
	Join(elem ...string) string
	Base(p string) string
}

// Upload copies the local src to dst in the VM.
func Upload(ctx context.Context, c *sftp.Client, src, dst string, progress CopyProgress) (CopyStats, error) {
	return copyTree(ctx, localFS{}, remoteFS{c}, src, dst, progress)
}

// Download copies src in the VM to the local dst.
func Download(ctx context.Context, c *sftp.Client, src, dst string, progress CopyProgress) (CopyStats, error) {
	return copyTree(ctx, remoteFS{c}, localFS{}, src, dst, progress)
}

func copyTree(ctx context.Context, from, to fsys, src, dst string, progress CopyProgress) (CopyStats, error) {
	var st CopyStats
	contents := strings.HasSuffix(src, "/.") || src == "."
	srcClean := strings.TrimSuffix(src, "/.")
	if srcClean == "" {
		srcClean = "/"
	}
	fi, err := from.Lstat(srcClean)
	if err != nil {
		return st, fmt.Errorf("%s: %w", src, err)
	}
	// Where it goes.
	target := dst
	dfi, derr := to.Stat(dst)
	dstIsDir := derr == nil && dfi.IsDir()
	switch {
	case fi.IsDir() && contents:
		if derr != nil { // SRC/. into a new DST
			if err := to.Mkdir(dst); err != nil {
				return st, fmt.Errorf("%s: %w", dst, err)
			}
		} else if !dstIsDir {
			return st, fmt.Errorf("%s is not a directory: a directory's contents go into a directory", dst)
		}
	case dstIsDir || strings.HasSuffix(dst, "/"):
		if derr != nil {
			return st, fmt.Errorf("%s: no such directory", dst)
		}
		target = to.Join(dst, from.Base(srcClean))
	case derr != nil && !errors.Is(derr, fs.ErrNotExist) && !errors.Is(derr, os.ErrNotExist) && !isNotExist(derr):
		return st, fmt.Errorf("%s: %w", dst, derr)
	case fi.IsDir() && derr == nil:
		return st, fmt.Errorf("%s exists and is not a directory: cannot copy the directory %s onto it", dst, src)
	}
	var total int64
	if progress != nil {
		total = treeBytes(from, srcClean, fi)
	}
	c := &copier{ctx: ctx, from: from, to: to, progress: progress, total: total, st: &st}
	if fi.IsDir() && contents {
		err = c.dirContents(srcClean, target)
		if err == nil {
			err = to.Chmod(target, fi.Mode().Perm())
		}
	} else {
		err = c.entry(srcClean, target, fi)
	}
	return st, err
}

type copier struct {
	ctx      context.Context
	from, to fsys
	progress CopyProgress
	total    int64
	st       *CopyStats
}

func (c *copier) entry(src, dst string, fi fs.FileInfo) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := c.from.ReadLink(src)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if err := c.to.Symlink(t, dst); err != nil {
			return fmt.Errorf("%s: %w", dst, err)
		}
		c.st.Links++
		return nil
	case fi.IsDir():
		if err := c.to.Mkdir(dst); err != nil {
			if _, serr := c.to.Stat(dst); serr != nil {
				return fmt.Errorf("%s: %w", dst, err)
			}
		}
		c.st.Dirs++
		if err := c.dirContents(src, dst); err != nil {
			return err
		}
		// Modes last: a read-only directory is filled first.
		if err := c.to.Chmod(dst, fi.Mode().Perm()|modeBits(fi.Mode())); err != nil {
			return fmt.Errorf("%s: %w", dst, err)
		}
		return c.to.Chtimes(dst, fi)
	case fi.Mode().IsRegular():
		return c.file(src, dst, fi)
	}
	return fmt.Errorf("%s is a %s: only files, directories and links are copied", src, fi.Mode().Type())
}

func (c *copier) dirContents(src, dst string) error {
	ents, err := c.from.ReadDir(src)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	for _, e := range ents {
		if err := c.entry(c.from.Join(src, e.Name()), c.to.Join(dst, e.Name()), e); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) file(src, dst string, fi fs.FileInfo) error {
	r, err := c.from.Open(src)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	defer r.Close()
	w, err := c.to.Create(dst, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("%s: %w", dst, err)
	}
	_, err = io.Copy(w, &progressReader{r: r, c: c, ctx: c.ctx})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	c.st.Files++
	if err := c.to.Chmod(dst, fi.Mode().Perm()|modeBits(fi.Mode())); err != nil {
		return fmt.Errorf("%s: %w", dst, err)
	}
	return c.to.Chtimes(dst, fi)
}

// modeBits keeps setuid, setgid and sticky.
func modeBits(m fs.FileMode) fs.FileMode {
	return m & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

type progressReader struct {
	r   io.Reader
	c   *copier
	ctx context.Context
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.c.st.Bytes += int64(n)
	if p.c.progress != nil && n > 0 {
		p.c.progress(p.c.st.Bytes, p.c.total)
	}
	return n, err
}

func treeBytes(f fsys, p string, fi fs.FileInfo) int64 {
	if fi.Mode().IsRegular() {
		return fi.Size()
	}
	if !fi.IsDir() {
		return 0
	}
	ents, err := f.ReadDir(p)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		n += treeBytes(f, f.Join(p, e.Name()), e)
	}
	return n
}

func isNotExist(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxNoSuchFile
}

// localFS is this machine.
type localFS struct{}

func (localFS) Lstat(p string) (fs.FileInfo, error) { return os.Lstat(p) }
func (localFS) Stat(p string) (fs.FileInfo, error)  { return os.Stat(p) }
func (localFS) ReadDir(p string) ([]fs.FileInfo, error) {
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}
func (localFS) Open(p string) (io.ReadCloser, error) { return os.Open(p) }
func (localFS) Create(p string, m fs.FileMode) (io.WriteCloser, error) {
	return os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, m|0o200)
}
func (localFS) Mkdir(p string) error                { return os.Mkdir(p, 0o755) }
func (localFS) Symlink(t, p string) error           { return os.Symlink(t, p) }
func (localFS) ReadLink(p string) (string, error)   { return os.Readlink(p) }
func (localFS) Chmod(p string, m fs.FileMode) error { return os.Chmod(p, m) }
func (localFS) Chtimes(p string, fi fs.FileInfo) error {
	return os.Chtimes(p, fi.ModTime(), fi.ModTime())
}
func (localFS) Join(e ...string) string { return filepath.Join(e...) }
func (localFS) Base(p string) string    { return filepath.Base(p) }

// remoteFS is the VM, over SFTP (paths are slash-separated, relative to the user's home).
type remoteFS struct{ c *sftp.Client }

func (r remoteFS) Lstat(p string) (fs.FileInfo, error)     { return r.c.Lstat(p) }
func (r remoteFS) Stat(p string) (fs.FileInfo, error)      { return r.c.Stat(p) }
func (r remoteFS) ReadDir(p string) ([]fs.FileInfo, error) { return r.c.ReadDir(p) }
func (r remoteFS) Open(p string) (io.ReadCloser, error)    { return r.c.Open(p) }
func (r remoteFS) Create(p string, m fs.FileMode) (io.WriteCloser, error) {
	return r.c.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
}
func (r remoteFS) Mkdir(p string) error                { return r.c.Mkdir(p) }
func (r remoteFS) Symlink(t, p string) error           { return r.c.Symlink(t, p) }
func (r remoteFS) ReadLink(p string) (string, error)   { return r.c.ReadLink(p) }
func (r remoteFS) Chmod(p string, m fs.FileMode) error { return r.c.Chmod(p, m) }
func (r remoteFS) Chtimes(p string, fi fs.FileInfo) error {
	return r.c.Chtimes(p, fi.ModTime(), fi.ModTime())
}
func (remoteFS) Join(e ...string) string { return path.Join(e...) }
func (remoteFS) Base(p string) string    { return path.Base(p) }
