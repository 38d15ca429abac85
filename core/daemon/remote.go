package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/server"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Clients on another machine than the host's (`fvm --host ssh://...`): their
// files arrive as uploads, kept in cache/uploads/sha256-HEX/NAME until a
// request uses them (an import moves the file into the cache; an ISO install
// reads it in place, and prune removes it once no VM names it); their TCP
// connections reach guest ports and the web console through tunnels.

var (
	_ server.TunnelService = (*Daemon)(nil)
	_ server.UploadService = (*Daemon)(nil)
)

// DialGuest connects to a port on a running VM's loopback over the SSH
// connection the host holds to it.
func (d *Daemon) DialGuest(ctx context.Context, name string, port uint16) (net.Conn, error) {
	h, err := d.running(name)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := h.Client(wctx)
	if err != nil {
		return nil, api.Errorf(api.CodeConflict, "vm %q: its SSH connection is not up: %v", name, err)
	}
	c, err := cl.Conn().Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(port)))
	if err != nil {
		return nil, api.Errorf(api.CodeConflict, "vm %q: nothing answers on its port %d (%v): start the server in the guest first", name, port, err)
	}
	return c, nil
}

// DialConsole connects to the web console and lets it accept the client's
// listener port as its Host.
func (d *Daemon) DialConsole(ctx context.Context, localPort int) (net.Conn, error) {
	port := d.console.Port()
	if port == 0 {
		d.mu.Lock()
		why := d.consoleErr
		d.mu.Unlock()
		if why == nil {
			why = errors.New("it is not listening")
		}
		return nil, api.Errorf(api.CodeUnsupported, "the web console of this host is unavailable: %v", why)
	}
	d.console.AllowTunnel(localPort)
	var dl net.Dialer
	return dl.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// maxUploadName bounds an upload's file name (it becomes one).
const maxUploadName = 128

// uploadName is the base name of the client's file, made safe as a file name
// here: leading dots go (a name starting with one is fvm's temporaries').
func uploadName(name string) (string, error) {
	name = strings.TrimLeft(filepath.Base(strings.TrimSpace(name)), ".")
	if name == "/" || len(name) > maxUploadName || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "", api.Errorf(api.CodeInvalid, "upload: %q is no file name: name the file (at most %d printable characters)", name, maxUploadName)
	}
	if name == "" {
		name = "upload"
	}
	return name, nil
}

// ReceiveUpload stores an upload under its digest, checked against the
// client's once the bytes have ended; nothing is kept of one that fails.
func (d *Daemon) ReceiveUpload(ctx context.Context, name string, size int64, body io.Reader, digest func() string) (api.Upload, error) {
	name, err := uploadName(name)
	if err != nil {
		return api.Upload{}, err
	}
	dir := d.opts.Layout.UploadsDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return api.Upload{}, hostError(fmt.Errorf("uploads dir: %w", err))
	}
	f, err := os.CreateTemp(dir, store.TempPrefix+"upload-*")
	if err != nil {
		return api.Upload{}, hostError(fmt.Errorf("upload of %s: %w", name, err))
	}
	store.LockOpen(f) // a prune of stale temporaries leaves it alone
	tmp := f.Name()
	keep := false
	defer func() {
		f.Close()
		if !keep {
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, size+1))
	gone := func(format string, args ...any) (api.Upload, error) {
		return api.Upload{}, api.Errorf(api.CodeInvalid, "upload of %s: %s: nothing was kept", name, fmt.Sprintf(format, args...))
	}
	switch {
	case err != nil && ctx.Err() == nil && isNoSpace(err):
		return api.Upload{}, hostError(fmt.Errorf("upload of %s: %w (free space in %s)", name, err, dir))
	case err != nil:
		return gone("cut after %s of %s (%v)", vm.FormatSize(n), vm.FormatSize(size), err)
	case n != size:
		return gone("%d bytes arrived where %d were announced", n, size)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	switch want := digest(); {
	case want == "":
		return gone("no digest followed the bytes (the upload was cut?)")
	case want != got:
		return gone("the bytes arrived altered: their SHA-256 is %s, the client read %s", got, want)
	}
	if err := f.Sync(); err != nil {
		return api.Upload{}, hostError(fmt.Errorf("upload of %s: %w", name, err))
	}
	final := filepath.Join(dir, strings.Replace(got, ":", "-", 1))
	if p, err := d.uploadPath(got); err == nil { // the same bytes are here already
		now := time.Now()
		os.Chtimes(filepath.Dir(p), now, now) // prune counts from the last upload
		return api.Upload{Digest: got, Size: n, Name: filepath.Base(p)}, nil
	}
	// The directory appears complete, by rename, with the file in it.
	tdir, err := os.MkdirTemp(dir, store.TempPrefix+"dir-*")
	if err != nil {
		return api.Upload{}, hostError(err)
	}
	if err = os.Chmod(tmp, 0o444); err == nil {
		err = os.Rename(tmp, filepath.Join(tdir, name))
	}
	if err == nil {
		err = os.Rename(tdir, final)
	}
	if err != nil {
		os.RemoveAll(tdir)
		if p, perr := d.uploadPath(got); perr == nil { // the same upload won the race
			return api.Upload{Digest: got, Size: n, Name: filepath.Base(p)}, nil
		}
		return api.Upload{}, hostError(fmt.Errorf("upload of %s: %w", name, err))
	}
	keep = true
	store.SyncDir(dir)
	d.log.Info("upload received", "name", name, "digest", got, "bytes", n)
	return api.Upload{Digest: got, Size: n, Name: name}, nil
}

func isNoSpace(err error) bool { return strings.Contains(err.Error(), "no space left") }

var uploadDigestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// uploadPath is the file of an upload named by its digest.
func (d *Daemon) uploadPath(digest string) (string, error) {
	if !uploadDigestRE.MatchString(digest) {
		return "", api.Errorf(api.CodeInvalid, "upload %q: not a sha256:HEX digest", digest)
	}
	dir := filepath.Join(d.opts.Layout.UploadsDir(), strings.Replace(digest, ":", "-", 1))
	ents, err := os.ReadDir(dir)
	if err == nil && len(ents) == 1 && ents[0].Type().IsRegular() {
		return filepath.Join(dir, ents[0].Name()), nil
	}
	return "", api.Errorf(api.CodeNotFound, "upload %s is not on this host (used already, or pruned): upload the file again", digest)
}

// importUpload registers an uploaded disk as an image; the upload is used up.
func (d *Daemon) importUpload(ctx context.Context, req api.ImportRequest) (api.Image, error) {
	p, err := d.uploadPath(req.Upload)
	if err != nil {
		return api.Image{}, err
	}
	if req.Source == "" {
		req.Source = filepath.Base(p)
	}
	img, err := d.images.ImportUploaded(ctx, p, req.Upload, req)
	if err == nil {
		os.RemoveAll(filepath.Dir(p)) // its file was moved into the cache
	}
	return img, err
}

// uploadedISO is the path of an uploaded installer ISO; it stays where it
// is while VMs name it (Spec.ISO), and prune removes it after.
func (d *Daemon) uploadedISO(digest string) (string, error) {
	return d.uploadPath(digest)
}

// uploadKeep is how long an upload that no VM names waits for the request
// that uses it before prune removes it.
const uploadKeep = time.Hour

// pruneUploads removes uploads that no VM names and nobody used within
// uploadKeep, and temporaries of uploads whose writer is gone.
func (d *Daemon) pruneUploads() (removed []string, freed int64) {
	dir := d.opts.Layout.UploadsDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0
	}
	named := map[string]bool{}
	if insts, _, err := d.store.List(); err == nil {
		for _, inst := range insts {
			if inst.Spec.ISO != "" {
				named[filepath.Dir(inst.Spec.ISO)] = true
			}
		}
	} else {
		return nil, 0 // unsure which VMs name what: keep everything
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil {
			continue
		}
		switch {
		case store.IsTemp(e.Name()) && e.Type().IsRegular():
			if !store.IsStale(p) {
				continue
			}
		case store.IsTemp(e.Name()):
			if time.Since(info.ModTime()) < uploadKeep {
				continue
			}
		case named[p] || time.Since(info.ModTime()) < uploadKeep:
			continue
		}
		size := treeSize(p)
		if os.RemoveAll(p) == nil {
			removed, freed = append(removed, p), freed+size
		}
	}
	return removed, freed
}

func treeSize(p string) (n int64) {
	filepath.WalkDir(p, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// hostname names this machine in messages a client elsewhere reads.
func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "this machine"
}
