package libvirt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
)

// vmHost is a VM's daemon with what the driver needs of it.
type vmHost struct {
	rec  record
	c    *client
	vols *poolAPI
}

// hostOf returns the daemon a made VM lives on.
func (d *Driver) hostOf(inst *store.Instance) (*vmHost, error) {
	rec, err := loadRecord(inst.Dir)
	if err != nil {
		return nil, fmt.Errorf("vm %q: %s: %w", inst.Spec.Name, RecordFile, err)
	}
	c, err := d.clientFor(rec.URI)
	if err != nil {
		return nil, err
	}
	return &vmHost{rec: rec, c: c, vols: &poolAPI{c: c, t: c.t, name: rec.Pool}}, nil
}

// Create places the VM on a libvirt host (placement.go), uploads its base
// there once per digest, makes its disk volume on it and its seed volume, and
// defines the domain. It is idempotent: a second call remakes the volumes.
func (d *Driver) Create(ctx context.Context, inst *store.Instance, in driver.CreateInput) error {
	name := inst.Spec.Name
	if in.Base == nil {
		return fmt.Errorf("vm %q: the libvirt backend makes VMs from images only: %w", name, driver.ErrUnsupported)
	}
	cfg, err := d.hosts()
	if err != nil {
		return err
	}
	h, f, err := d.place(ctx, cfg, inst.Spec.On, inst.Spec.MemoryMiB)
	if err != nil {
		return fmt.Errorf("vm %q: %w", name, err)
	}
	if inst.Spec.On != h.Name { // the host's name in the spec: `fvm ps` shows it
		inst.Spec.On = h.Name
		if err := inst.SaveSpec(); err != nil {
			return err
		}
	}
	c, err := d.clientFor(h.URI)
	if err != nil {
		return err
	}
	localWhy := ""
	if d.opts.LocalKVM != nil && localURI(h.URI) {
		localWhy = d.opts.LocalKVM()
	}
	typ, notice, err := domainType(f.Types, inst.Spec.Accel, localWhy)
	if err != nil {
		return fmt.Errorf("vm %q: %w", name, err)
	}
	accel := "tcg"
	if typ == "kvm" {
		accel, notice = "kvm", ""
	}
	rec := record{Host: h.Name, URI: h.URI, Pool: cfg.Pool, UUID: newUUID(), Domain: DomainPrefix + name, Digest: in.Base.Digest, Accel: accel, AccelWhy: notice}
	if old, err := loadRecord(inst.Dir); err == nil && old.URI == rec.URI {
		rec.UUID = old.UUID // a second Create keeps the domain
	}
	// Recorded first: a Delete after a failure below finds what was made.
	if err := saveRecord(inst.Dir, rec); err != nil {
		return err
	}
	poolPath, err := ensurePool(ctx, c, cfg.Pool, poolDir(ctx, c, cfg.PoolPath, cfg.Pool))
	if err != nil {
		return err
	}
	vols := &poolAPI{c: c, t: c.t, name: cfg.Pool}
	where := fmt.Sprintf("libvirt %s pool %s", c.t.uri, cfg.Pool)
	if err := d.checkDomainFree(ctx, c, rec); err != nil {
		return err
	}
	base := in.Base
	fmt.Fprintf(d.opts.Log, "vm %s: base %s on %s\n", name, short(base.Digest), where)
	baseVol, err := ensureBase(ctx, vols, where, baseSource{
		Digest: base.Digest, Format: base.Format, Size: fileSize(base.Path),
		Open: func() (io.ReadCloser, error) { return base.Open() },
	}, d.progress(name))
	if err != nil {
		return err
	}
	rec.Base = baseVol
	if err := saveRecord(inst.Dir, rec); err != nil {
		return err
	}
	basePath, err := vols.path(ctx, baseVol)
	if err != nil {
		return fmt.Errorf("%s: base volume %s: %w", where, baseVol, err)
	}
	size := max(inst.Spec.DiskBytes, base.VirtualSize)
	disk, seed := diskVolume(name), seedVolume(name)
	for _, v := range []string{disk, seed} {
		if err := vols.remove(ctx, v); err != nil {
			return fmt.Errorf("%s: remove the old volume %s: %w", where, v, err)
		}
	}
	if err := vols.create(ctx, volumeXML(disk, "qcow2", uint64(size), basePath, base.Format)); err != nil {
		return fmt.Errorf("%s: create the disk %s: %w", where, disk, err)
	}
	if err := vols.create(ctx, volumeXML(seed, "raw", uint64(len(in.Seed)), "", "")); err != nil {
		return fmt.Errorf("%s: create the seed %s: %w", where, seed, err)
	}
	if err := vols.upload(ctx, seed, bytes.NewReader(in.Seed), uint64(len(in.Seed))); err != nil {
		return fmt.Errorf("%s: upload the seed %s: %w", where, seed, err)
	}
	x, err := Domain(domainConfig{
		Name: name, UUID: rec.UUID, Type: typ, Arch: f.Arch,
		CPUs: inst.Spec.CPUs, MemoryMiB: inst.Spec.MemoryMiB,
		Pool: cfg.Pool, Disk: disk, Seed: seed,
		SerialLog: path.Join(poolPath, serialVolume(name)),
		Meta: Meta{Name: name, Image: inst.Spec.Image, Digest: base.Digest, User: inst.Spec.User,
			Backend: strings.TrimSpace(Version + " " + d.opts.FVMVersion), Host: hostname()},
	})
	if err != nil {
		return err
	}
	l, err := c.get(ctx)
	if err != nil {
		return err
	}
	if _, err := l.DomainDefineXMLFlags(x, golibvirt.DomainDefineValidate); err != nil {
		return fmt.Errorf("libvirt %s: define domain %s: %w", c.t.uri, rec.Domain, err)
	}
	return nil
}

// checkDomainFree refuses a name a domain fvm did not make (or another fvm
// host made) already has on that daemon: fvm never touches it.
func (d *Driver) checkDomainFree(ctx context.Context, c *client, rec record) error {
	l, err := c.get(ctx)
	if err != nil {
		return err
	}
	dom, err := l.DomainLookupByName(rec.Domain)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if uuidText(dom.UUID) == rec.UUID {
		return nil // ours, from an earlier Create of this VM
	}
	return fmt.Errorf("libvirt %s already has a domain %s that is not this VM's: pick another name (fvm leaves that domain alone)", c.t.uri, rec.Domain)
}

// progress reports an upload's progress in the host's log (the seam has no
// progress channel for Create yet).
func (d *Driver) progress(name string) Progress {
	last := map[string]int64{}
	return func(phase string, done, total int64) {
		pct := int64(100)
		if total > 0 {
			pct = done * 100 / total
		}
		if pct/10 != last[phase]/10 || done == total {
			last[phase] = pct
			fmt.Fprintf(d.opts.Log, "vm %s: base %s %d%% (%s of %s)\n", name, phase, pct, sizeText(done), sizeText(total))
		}
	}
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func uuidText(u golibvirt.UUID) string {
	b := u[:]
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func parseUUID(s string) (golibvirt.UUID, error) {
	var u golibvirt.UUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return u, fmt.Errorf("uuid %q", s)
	}
	for i := 0; i < 16; i++ {
		var b byte
		if _, err := fmt.Sscanf(h[2*i:2*i+2], "%02x", &b); err != nil {
			return u, fmt.Errorf("uuid %q", s)
		}
		u[i] = b
	}
	return u, nil
}

// domainOf looks the VM's domain up by its UUID.
func (h *vmHost) domain(ctx context.Context) (*golibvirt.Libvirt, golibvirt.Domain, error) {
	l, err := h.c.get(ctx)
	if err != nil {
		return nil, golibvirt.Domain{}, err
	}
	u, err := parseUUID(h.rec.UUID)
	if err != nil {
		return nil, golibvirt.Domain{}, err
	}
	dom, err := l.DomainLookupByUUID(u)
	return l, dom, err
}
