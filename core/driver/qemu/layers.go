package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
)

// Disk layers. A VM's disk is a chain of qcow2 files: its top (the only one
// written, in the instance directory; its name is in the facts, DiskFile
// until the first snapshot), then the frozen layers of its snapshots (in the
// layers directory, read-only, shared by the snapshots, the VM and every
// clone of them), then a warm snapshot's frozen disk and the cached base.
//
// A snapshot freezes the top where it is: the top's file gets a second name
// in the layers directory (a hard link: nothing is copied, nothing that QEMU
// has open moves), a new top is made on it, QEMU switches to the new top
// (blockdev-snapshot-sync), and only then the old name goes. Each step is
// journalled in the facts (topSwitch) before it is made, so a crash at any
// moment leaves a chain that resolves: settle rolls an interrupted switch
// forward when the new top is in use (or could be: a VM that does not run)
// and back otherwise. Headers always name files that exist: new tops are
// created naming the layer's own path, and the old name goes last.

// layerMu orders everything that makes, switches or removes layers in this
// process (one host per state directory): a prune sees either no trace of a
// snapshot in progress or its journal.
var layerMu sync.Mutex

// DefaultMaxLayers is how many of its own frozen layers a VM's chain may have
// under its top before it is flattened (streamed into the top).
const DefaultMaxLayers = 8

// topSwitch is the journal of a snapshot or a revert in progress: the top
// the VM goes on on (Top, a name in the instance directory), the frozen
// layer it is made on (Layer: for a snapshot, a second name of Old), and the
// top it replaces (Old).
type topSwitch struct {
	Top   string `json:"top"`
	Layer string `json:"layer"`
	Old   string `json:"old"`
}

// topName is the VM's current top: the facts' record, DiskFile before any snapshot.
func (f runFacts) topName() string {
	if f.Top != "" {
		return f.Top
	}
	return DiskFile
}

// newTopName names a new top: never a name used before (QEMU may still hold
// the old top's name for a node it will never reopen).
func newTopName() string { return "disk-" + randomHex(6) + ".qcow2" }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// layersDir is where frozen layers live: Options.LayersDir, else beside the
// VMs' directory (data/layers for data/vms/NAME).
func (d *Driver) layersDir(instDir string) string {
	if d.opts.LayersDir != "" {
		return d.opts.LayersDir
	}
	return filepath.Join(filepath.Dir(filepath.Dir(instDir)), "layers")
}

func (d *Driver) maxLayers() int {
	if d.opts.MaxLayers > 0 {
		return d.opts.MaxLayers
	}
	return DefaultMaxLayers
}

// newLayerPath names a new layer in dir (made 0700 when missing).
func newLayerPath(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("layers directory: %w", err)
	}
	return filepath.Join(dir, randomHex(12)+".qcow2"), nil
}

// chain lists what the qcow2 at path reads, from its header on down:
// backing file, its backing file, and so on (absolute, cleaned). It stops at
// a file that is missing or not qcow2, which it still lists.
func chain(path string) ([]string, error) {
	var out []string
	for p := path; len(out) < 256; {
		info, err := image.Inspect(p)
		if err != nil {
			if p != path && errors.Is(err, fs.ErrNotExist) {
				return out, nil
			}
			return out, err
		}
		if info.BackingFile == "" {
			return out, nil
		}
		b := info.BackingFile
		if !filepath.IsAbs(b) {
			b = filepath.Join(filepath.Dir(p), b)
		}
		p = filepath.Clean(b)
		out = append(out, p)
	}
	return out, fmt.Errorf("disk %s: its chain of backing files does not end", path)
}

// backingOf is the backing file named in a qcow2's header ("" for none).
func backingOf(path string) string {
	info, err := image.Inspect(path)
	if err != nil || info.BackingFile == "" {
		return ""
	}
	if filepath.IsAbs(info.BackingFile) {
		return filepath.Clean(info.BackingFile)
	}
	return filepath.Join(filepath.Dir(path), info.BackingFile)
}

// frozenDisk is the frozen disk a snapshot directory (warm or named)
// records: its DiskFile, or the layer that name links to.
func frozenDisk(snapshot string) (string, error) {
	p := filepath.Join(snapshot, DiskFile)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: its disk: %w", snapshot, err)
	}
	return real, nil
}

// inLayers says whether path is a frozen layer in dir.
func inLayers(dir, path string) bool {
	return filepath.Dir(path) == filepath.Clean(dir) && strings.HasSuffix(path, ".qcow2")
}

// flattenBase is where flattening a chain (the top's backing files, in
// order) stops: the first file below the VM's own layers (a warm snapshot's
// disk or a base), "" for none; deep says whether the chain has more than
// max layers above it.
func flattenBase(layers string, ch []string, max int) (base string, deep bool) {
	n := 0
	for _, p := range ch {
		if !inLayers(layers, p) {
			return p, n > max
		}
		n++
	}
	return "", n > max
}

// settle finishes or undoes a top switch that a crash interrupted (the
// journal in the facts), then removes tops that are no longer the VM's.
// inUse reports the file QEMU writes when the VM runs ("" when it does not).
// Callers hold layerMu.
func settle(inst *store.Instance, inUse string) error {
	f, err := loadFacts(inst)
	if err != nil {
		return err
	}
	if n := f.Next; n != nil {
		top := inst.Path(n.Top)
		forward := inUse == top
		if inUse == "" { // nothing runs: the new top is the disk if it was made whole
			forward = isFile(top) && backingOf(top) == n.Layer && isFile(n.Layer)
		}
		if forward {
			err = commitSwitch(inst, f)
		} else {
			err = undoSwitch(inst, f)
		}
		if err != nil {
			return fmt.Errorf("vm %q: finish an interrupted snapshot: %w", inst.Spec.Name, err)
		}
		f, _ = loadFacts(inst)
	}
	return removeStrayTops(inst.Dir, f.topName())
}

// commitSwitch makes the journalled top the VM's: the facts first (they
// name the new top from now on), then the old top's name goes (its content
// stays under the layer's name), then the layer is made read-only.
func commitSwitch(inst *store.Instance, f runFacts) error {
	n := *f.Next
	f.Top, f.Next = n.Top, nil
	if err := saveFacts(inst, f); err != nil {
		return err
	}
	if n.Old != n.Top {
		if err := os.Remove(inst.Path(n.Old)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if n.Layer != "" {
		os.Chmod(n.Layer, 0o400)
	}
	return nil
}

// undoSwitch removes what a switch that never happened made: the new top and
// the layer's name, when it is only a second name of the old top (a revert's
// layer is a snapshot's and stays).
func undoSwitch(inst *store.Instance, f runFacts) error {
	n := *f.Next
	var errs []error
	if err := os.Remove(inst.Path(n.Top)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if sameFile(n.Layer, inst.Path(n.Old)) {
		if err := os.Remove(n.Layer); err != nil {
			errs = append(errs, err)
		}
	}
	f.Next = nil
	errs = append(errs, saveFacts(inst, f))
	return errors.Join(errs...)
}

// removeStrayTops deletes top files of the instance other than its current
// one (what an interrupted switch or create left).
func removeStrayTops(dir, top string) error {
	names, _ := filepath.Glob(filepath.Join(dir, "disk*.qcow2*"))
	var errs []error
	for _, p := range names {
		if filepath.Base(p) == top {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// beginSwitch journals a switch from the VM's top to a new top on a new
// layer that is a second name of the current top, and makes both: the link
// and the new top, created naming the layer (its header never names a file
// that goes away). It returns the journal.
func (d *Driver) beginSwitch(ctx context.Context, inst *store.Instance, f runFacts) (topSwitch, error) {
	layer, err := newLayerPath(d.layersDir(inst.Dir))
	if err != nil {
		return topSwitch{}, err
	}
	n := topSwitch{Top: newTopName(), Layer: layer, Old: f.topName()}
	old := inst.Path(n.Old)
	info, err := image.Inspect(old)
	if err != nil {
		return topSwitch{}, err
	}
	f.Next = &n
	if err := saveFacts(inst, f); err != nil {
		return topSwitch{}, err
	}
	undo := func(err error) (topSwitch, error) { return topSwitch{}, errors.Join(err, undoSwitch(inst, f)) }
	if err := os.Link(old, layer); err != nil {
		return undo(fmt.Errorf("freeze the disk as a layer: %w", err))
	}
	store.SyncDir(filepath.Dir(layer))
	if err := d.newTop(ctx, inst.Path(n.Top), layer, info.VirtualSize); err != nil {
		return undo(err)
	}
	return n, nil
}

// newTop creates an empty qcow2 top of size bytes on layer (a qcow2), under
// a temporary name renamed into place. -u: the layer may be open for writing
// by a running QEMU, whose image lock qemu-img must not wait for.
func (d *Driver) newTop(ctx context.Context, top, layer string, size int64) error {
	qemuImg, err := d.qemuImg()
	if err != nil {
		return err
	}
	tmp := top + ".tmp"
	os.Remove(tmp)
	cmd := proc.DiesWithHost(exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", layer, tmp, fmt.Sprint((size+511)&^511)))
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create the new top %s: qemu-img: %s: %w", top, strings.TrimSpace(string(out)), err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, top); err != nil {
		os.Remove(tmp)
		return err
	}
	store.SyncDir(filepath.Dir(top))
	return nil
}

// PruneLayers removes the frozen layers that nothing reads (driver.Snapshotter):
// used is asked while no snapshot is being made, so a layer that one is
// making is in it (its VM's journal) or not yet made.
func (d *Driver) PruneLayers(used func() (map[string]bool, error)) (removed []string, freed int64, err error) {
	layerMu.Lock()
	defer layerMu.Unlock()
	dir := d.opts.LayersDir
	if dir == "" {
		return nil, 0, nil
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.qcow2"))
	if len(names) == 0 {
		return nil, 0, nil
	}
	inUse, err := used()
	if err != nil {
		return nil, 0, fmt.Errorf("which layers are in use: %w (nothing was removed)", err)
	}
	for _, p := range names {
		if inUse[p] {
			continue
		}
		n := diskBytes(p)
		if err := os.Remove(p); err != nil {
			return removed, freed, err
		}
		removed, freed = append(removed, p), freed+n
	}
	if len(removed) > 0 {
		store.SyncDir(dir)
	}
	return removed, freed, nil
}

// diskBytes is what a file takes on disk.
func diskBytes(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		// A layer shared by hard links (a top frozen in place) is freed only
		// with its last name.
		if s.Nlink > 1 {
			return 0
		}
		return s.Blocks * 512
	}
	return st.Size()
}

// flattenStopped streams the VM's own layers into its top while nothing runs
// (qemu-img rebase in safe mode: it copies what differs, then rewrites the
// header), when there are more than max of them. A crash midway leaves the
// old header on a top that holds copies of what it already read: consistent.
func (d *Driver) flattenStopped(ctx context.Context, top string) (bool, error) {
	ch, err := chain(top)
	if err != nil {
		return false, err
	}
	base, deep := flattenBase(d.layersDir(filepath.Dir(top)), ch, d.maxLayers())
	if !deep {
		return false, nil
	}
	qemuImg, err := d.qemuImg()
	if err != nil {
		return false, err
	}
	args := []string{"rebase", "-q", "-f", "qcow2", "-b", base}
	if base != "" {
		info, err := image.Inspect(base)
		if err != nil {
			return false, err
		}
		args = append(args, "-F", string(info.Format))
	}
	if out, err := proc.DiesWithHost(exec.CommandContext(ctx, qemuImg, append(args, top)...)).CombinedOutput(); err != nil {
		return false, fmt.Errorf("flatten %s: qemu-img: %s: %w", top, strings.TrimSpace(string(out)), err)
	}
	return true, nil
}
