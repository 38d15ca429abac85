package libvirt

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// fvm's storage pool on a libvirt host: a directory pool fvm creates when it is
// absent (libvirt.pool names it, default "fvm"), holding every volume fvm makes
// there. Volumes, never paths: fvm reads and writes them through the storage
// API (upload, download), so the libvirt host need not share a filesystem with
// fvm's host.
//
//	sha256-HEX.qcow2 (or .raw)   a base, uploaded once per digest
//	sha256-HEX.ok                its marker: uploaded whole and read back equal
//	fvm-NAME.qcow2               a VM's disk, backed by its base
//	fvm-NAME-seed.iso            its cloud-init seed
//	fvm-NAME.serial.log          its serial console's log (written by virtlogd)
//	fvm-NAME.save                its managed-save-like warm state (warm clones)

// DefaultPool is the pool's name when libvirt.pool says none.
const DefaultPool = "fvm"

// volumes is what fvm's storage code needs of one pool: the real one is
// poolAPI; tests use a fake.
type volumes interface {
	// available is the pool's free space in bytes.
	available(ctx context.Context) (uint64, error)
	exists(ctx context.Context, name string) (bool, error)
	// create makes a volume from its XML.
	create(ctx context.Context, volXML string) error
	remove(ctx context.Context, name string) error
	upload(ctx context.Context, name string, r io.Reader, size uint64) error
	download(ctx context.Context, name string, w io.Writer) error
	path(ctx context.Context, name string) (string, error)
	list(ctx context.Context) ([]string, error)
	refresh(ctx context.Context) error
}

// poolAPI is a pool of a libvirt daemon.
type poolAPI struct {
	c    *client
	t    *target
	name string

	dmu  sync.Mutex
	data *session // readFrom's
}

func (p *poolAPI) pool(ctx context.Context) (*golibvirt.Libvirt, golibvirt.StoragePool, error) {
	l, err := p.c.get(ctx)
	if err != nil {
		return nil, golibvirt.StoragePool{}, err
	}
	pool, err := l.StoragePoolLookupByName(p.name)
	if err != nil {
		return nil, pool, fmt.Errorf("libvirt %s: storage pool %q: %w", p.t.uri, p.name, err)
	}
	return l, pool, nil
}

func (p *poolAPI) vol(ctx context.Context, name string) (*golibvirt.Libvirt, golibvirt.StorageVol, error) {
	l, pool, err := p.pool(ctx)
	if err != nil {
		return nil, golibvirt.StorageVol{}, err
	}
	v, err := l.StorageVolLookupByName(pool, name)
	return l, v, err
}

func (p *poolAPI) available(ctx context.Context) (uint64, error) {
	l, pool, err := p.pool(ctx)
	if err != nil {
		return 0, err
	}
	_, _, _, avail, err := l.StoragePoolGetInfo(pool)
	return avail, err
}

func (p *poolAPI) exists(ctx context.Context, name string) (bool, error) {
	_, _, err := p.vol(ctx, name)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (p *poolAPI) create(ctx context.Context, volXML string) error {
	l, pool, err := p.pool(ctx)
	if err != nil {
		return err
	}
	_, err = l.StorageVolCreateXML(pool, volXML, 0)
	return err
}

func (p *poolAPI) remove(ctx context.Context, name string) error {
	l, v, err := p.vol(ctx, name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	err = l.StorageVolDelete(v, 0)
	if isNotFound(err) {
		return nil
	}
	return err
}

// transferLimit bounds one upload or download of a base (a few GiB, over a
// network at worst).
const transferLimit = 2 * time.Hour

// upload and download run on sessions of their own (session.go).
func (p *poolAPI) upload(ctx context.Context, name string, r io.Reader, size uint64) error {
	return oneShot(ctx, p.t, transferLimit, "upload "+name, func(l *golibvirt.Libvirt) error {
		v, err := lookupVol(l, p.name, name)
		if err != nil {
			return err
		}
		return l.StorageVolUpload(v, r, 0, size, 0)
	})
}

func (p *poolAPI) download(ctx context.Context, name string, w io.Writer) error {
	return oneShot(ctx, p.t, transferLimit, "download "+name, func(l *golibvirt.Libvirt) error {
		v, err := lookupVol(l, p.name, name)
		if err != nil {
			return err
		}
		return l.StorageVolDownload(v, w, 0, 0, 0)
	})
}

func lookupVol(l *golibvirt.Libvirt, pool, name string) (golibvirt.StorageVol, error) {
	pl, err := l.StoragePoolLookupByName(pool)
	if err != nil {
		return golibvirt.StorageVol{}, err
	}
	return l.StorageVolLookupByName(pl, name)
}

func (p *poolAPI) path(ctx context.Context, name string) (string, error) {
	l, v, err := p.vol(ctx, name)
	if err != nil {
		return "", err
	}
	return l.StorageVolGetPath(v)
}

func (p *poolAPI) list(ctx context.Context) ([]string, error) {
	l, pool, err := p.pool(ctx)
	if err != nil {
		return nil, err
	}
	n, err := l.StoragePoolNumOfVolumes(pool)
	if err != nil {
		return nil, err
	}
	return l.StoragePoolListVolumes(pool, n+16)
}

func (p *poolAPI) refresh(ctx context.Context) error {
	l, pool, err := p.pool(ctx)
	if err != nil {
		return err
	}
	return l.StoragePoolRefresh(pool, 0)
}

// ensurePool makes sure fvm's pool exists and runs: defined as a directory
// pool at dir (see poolDir), built, started and set to autostart. A pool of
// that name that exists already is used as it is, wherever it lives.
func ensurePool(ctx context.Context, c *client, name, dir string) (path string, err error) {
	l, err := c.get(ctx)
	if err != nil {
		return "", err
	}
	pool, err := l.StoragePoolLookupByName(name)
	if isNotFound(err) {
		if dir == "" {
			return "", fmt.Errorf("libvirt %s: storage pool %q does not exist and no directory is known for it: set libvirt.pool_path", c.t.uri, name)
		}
		x, _ := (&libvirtxml.StoragePool{
			Type:   "dir",
			Name:   name,
			Target: &libvirtxml.StoragePoolTarget{Path: dir},
		}).Marshal()
		if pool, err = l.StoragePoolDefineXML(x, 0); err != nil {
			return "", fmt.Errorf("libvirt %s: define storage pool %q at %s: %w", c.t.uri, name, dir, err)
		}
		if err := l.StoragePoolBuild(pool, golibvirt.StoragePoolBuildNew); err != nil {
			l.StoragePoolUndefine(pool)
			return "", fmt.Errorf("libvirt %s: make storage pool %q's directory %s: %w", c.t.uri, name, dir, err)
		}
		l.StoragePoolSetAutostart(pool, 1)
	} else if err != nil {
		return "", fmt.Errorf("libvirt %s: storage pool %q: %w", c.t.uri, name, err)
	}
	if active, err := l.StoragePoolIsActive(pool); err == nil && active == 0 {
		if err := l.StoragePoolCreate(pool, 0); err != nil {
			return "", fmt.Errorf("libvirt %s: start storage pool %q: %w", c.t.uri, name, err)
		}
	}
	x, err := l.StoragePoolGetXMLDesc(pool, 0)
	if err != nil {
		return "", err
	}
	var def libvirtxml.StoragePool
	if err := xml.Unmarshal([]byte(x), &def); err != nil || def.Target == nil {
		return "", fmt.Errorf("libvirt %s: storage pool %q has no target directory", c.t.uri, name)
	}
	if def.Type != "dir" {
		return "", fmt.Errorf("libvirt %s: storage pool %q is of type %s: fvm needs a directory pool (qcow2 volumes backed by a base): name another with libvirt.pool", c.t.uri, name, def.Type)
	}
	return def.Target.Path, nil
}

// poolDir is where a new pool's directory goes on the libvirt host: the
// configured one; beside the daemon's own "default" pool (its parent's
// fvm/, e.g. /var/lib/libvirt/fvm); for the system daemon and this user's
// own session daemon libvirt's places; "" when none is known (another user's
// or a remote session daemon without a default pool: libvirt.pool_path must
// say, or a pool of that name made there beforehand).
func poolDir(ctx context.Context, c *client, configured, name string) string {
	if configured != "" {
		return configured
	}
	if l, err := c.get(ctx); err == nil {
		if pool, err := l.StoragePoolLookupByName("default"); err == nil {
			if x, err := l.StoragePoolGetXMLDesc(pool, 0); err == nil {
				var def libvirtxml.StoragePool
				if xml.Unmarshal([]byte(x), &def) == nil && def.Target != nil && def.Target.Path != "" {
					return path.Join(path.Dir(def.Target.Path), name)
				}
			}
		}
	}
	switch {
	case !c.t.session:
		return "/var/lib/libvirt/" + name
	case c.t.local && c.t.ownSession:
		data := os.Getenv("XDG_DATA_HOME")
		if data == "" {
			home, _ := os.UserHomeDir()
			data = filepath.Join(home, ".local", "share")
		}
		return filepath.Join(data, "libvirt", name)
	}
	return ""
}

// volumeXML is a new volume's XML: a raw file of size bytes, or a qcow2 of
// capacity bytes on a backing volume.
func volumeXML(name, format string, capacity uint64, backingPath, backingFormat string) string {
	v := &libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Value: capacity, Unit: "bytes"},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: format}},
	}
	if format == "raw" {
		v.Allocation = &libvirtxml.StorageVolumeSize{Value: 0, Unit: "bytes"} // sparse: the upload fills it
	}
	if backingPath != "" {
		v.BackingStore = &libvirtxml.StorageVolumeBackingStore{
			Path:   backingPath,
			Format: &libvirtxml.StorageVolumeTargetFormat{Type: backingFormat},
		}
	}
	x, _ := v.Marshal()
	return x
}

// Volume names.
func baseVolume(digest, format string) string {
	return "sha256-" + strings.TrimPrefix(digest, "sha256:") + "." + format
}
func baseMarker(digest string) string {
	return "sha256-" + strings.TrimPrefix(digest, "sha256:") + ".ok"
}
func diskVolume(name string) string   { return DomainPrefix + name + ".qcow2" }
func seedVolume(name string) string   { return DomainPrefix + name + "-seed.iso" }
func serialVolume(name string) string { return DomainPrefix + name + ".serial.log" }
func saveVolume(name string) string   { return DomainPrefix + name + ".save" }

// size is a volume's current size in bytes (libvirt refreshes one volume's
// facts when asked for them).
func (p *poolAPI) size(ctx context.Context, name string) (uint64, error) {
	l, v, err := p.vol(ctx, name)
	if err != nil {
		return 0, err
	}
	_, capacity, _, err := l.StorageVolGetInfo(v)
	return capacity, err
}

// readFrom downloads a small volume from off to its end (the serial log's
// new output, a few KiB a second) on the pool's data session, which it keeps
// for the next call; one that fails or hangs is dropped (session.go).
func (p *poolAPI) readFrom(ctx context.Context, name string, w io.Writer, off uint64) error {
	p.dmu.Lock()
	defer p.dmu.Unlock()
	if p.data == nil {
		s, err := dialSession(ctx, p.t)
		if err != nil {
			return err
		}
		p.data = s
	}
	err := p.data.do(ctx, 20*time.Second, "read "+name, func(l *golibvirt.Libvirt) error {
		v, err := lookupVol(l, p.name, name)
		if err != nil {
			return err
		}
		return l.StorageVolDownload(v, w, off, 0, 0)
	})
	if err != nil && !isNotFound(err) {
		p.data.close()
		p.data = nil
	}
	return err
}

// closeData ends the pool's data session.
func (p *poolAPI) closeData() {
	p.dmu.Lock()
	defer p.dmu.Unlock()
	if p.data != nil {
		p.data.close()
		p.data = nil
	}
}
