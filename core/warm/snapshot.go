package warm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Snapshot bookkeeping: a snapshot is a directory cache/warm/<shape>-<fp>/
// holding the driver's frozen files and snapshot.json; it counts only with it.

// InfoFile describes a snapshot directory.
const InfoFile = "snapshot.json"

// Info is snapshot.json: what the host needs to clone from a snapshot.
type Info struct {
	Shape         string  `json:"shape"`       // ShapeKey of the VMs it serves
	Fingerprint   string  `json:"fingerprint"` // the driver's (driver.Warmer)
	Backend       string  `json:"backend"`
	Image         string  `json:"image"`
	Base          string  `json:"base"` // the cached base under its disk
	Arch          vm.Arch `json:"arch"`
	CPUs          int     `json:"cpus"`
	MemoryMiB     int     `json:"memoryMiB"`
	User          string  `json:"user"`
	DiskBytes     int64   `json:"diskBytes"`
	HostKeyPublic string  `json:"hostKeyPublic"` // the template's, refused by every clone
	InstanceID    string  `json:"instanceID"`    // the template's cloud-init instance id
	// Hostname is the template's hostname in the saved guest: a named
	// snapshot's VM (core/snapshot); "" for cloudinit.TemplateHostname.
	Hostname string `json:"hostname,omitempty"`
	// DiskOnly: no memory was saved (a named snapshot of a stopped VM or of
	// one with shares): its clones boot cold. Warm snapshots always have it.
	DiskOnly     bool      `json:"diskOnly,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	BuildSeconds float64   `json:"buildSeconds"`
}

// ShapeKey names the VMs a snapshot can serve: the same backend, base, arch,
// CPUs, memory and user (the user exists in the saved guest).
func ShapeKey(s *vm.Spec) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%d\x00%d\x00%s", s.Backend, s.BaseImage, s.Arch, s.CPUs, s.MemoryMiB, s.User)))
	return hex.EncodeToString(h[:12])
}

// dir is where the snapshot of shape made with fingerprint lives.
func (p *Pool) dir(shape, fingerprint string) string {
	return filepath.Join(p.opts.Layout.WarmDir(), shape+"-"+fingerprint[:16])
}

// Load reads a snapshot's description.
func Load(dir string) (Info, error) {
	var s Info
	err := store.ReadJSON(filepath.Join(dir, InfoFile), &s)
	return s, err
}

// templateSpec is the spec of the VMs a snapshot serves, as far as it says.
func (i Info) templateSpec() vm.Spec {
	return vm.Spec{Name: "check", Image: i.Image, BaseImage: i.Base, Arch: i.Arch, CPUs: i.CPUs, MemoryMiB: i.MemoryMiB,
		User: i.User, Accel: vm.Auto, Backend: i.Backend}
}

// List describes the snapshots made on base (all when base is ""), with
// whether new VMs would still clone from each.
func (p *Pool) List(ctx context.Context, base string) []api.WarmSnapshot {
	dirs, _ := filepath.Glob(filepath.Join(p.opts.Layout.WarmDir(), "*"))
	var out []api.WarmSnapshot
	for _, dir := range dirs {
		info, err := Load(dir)
		if err != nil || (base != "" && info.Base != base) {
			continue
		}
		out = append(out, describe(dir, info, p.current(ctx, dir, info)))
	}
	return out
}

// Bases are the bases the snapshots are made on.
func (p *Pool) Bases() []string {
	dirs, _ := filepath.Glob(filepath.Join(p.opts.Layout.WarmDir(), "*"))
	var out []string
	for _, dir := range dirs {
		if info, err := Load(dir); err == nil {
			out = append(out, info.Base)
		}
	}
	return out
}

// Serving is the directory of the snapshot new VMs of spec clone from now,
// which may not exist yet: after a QEMU, firmware or device change it is
// another than the one they cloned from before (where a spare clone's wish
// moves).
func (p *Pool) Serving(ctx context.Context, spec vm.Spec) (string, error) {
	fp, err := p.fingerprint(ctx, &spec)
	if err != nil {
		return "", err
	}
	return p.dir(ShapeKey(&spec), fp), nil
}

// current says whether new VMs would still clone from a snapshot.
func (p *Pool) current(ctx context.Context, dir string, info Info) bool {
	s := info.templateSpec()
	fp, err := p.fingerprint(ctx, &s)
	return err == nil && fp == info.Fingerprint && filepath.Base(dir) == info.Shape+"-"+fp[:16]
}

func describe(dir string, info Info, current bool) api.WarmSnapshot {
	return api.WarmSnapshot{
		Dir: dir, Arch: info.Arch, CPUs: info.CPUs, MemoryMiB: info.MemoryMiB, User: info.User,
		DiskBytes: info.DiskBytes, Bytes: dirBytes(dir), CreatedAt: info.CreatedAt, Current: current,
	}
}

// dirBytes is what a directory's files take on disk.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				} else {
					n += fi.Size()
				}
			}
		}
		return nil
	})
	return n
}

// removeTree removes a snapshot directory, whose files are read-only, out of
// sight first (under buildPrefix, which CleanBuilds removes at start): a crash
// part way never leaves a snapshot that loads with files missing.
func removeTree(dir string) error {
	return store.RemoveTree(dir, buildPrefix)
}
