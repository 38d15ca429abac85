package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

// ErrNotFound means no VM of that name exists.
var ErrNotFound = errors.New("not found")

// Instance is a VM's directory and its saved spec.
type Instance struct {
	Dir  string
	Spec vm.Spec
}

// Path returns the path of a file (one of the constants above) in the instance directory.
func (i *Instance) Path(name string) string { return filepath.Join(i.Dir, name) }

// Runtime holds the backend-neutral facts of the current or last run, written
// by the driver at start; a driver keeps its own facts in a file of its own.
type Runtime struct {
	SSHPort   int    `json:"sshPort"`
	Accel     string `json:"accel"`
	StartedAt string `json:"startedAt,omitempty"` // RFC 3339
}

// LoadRuntime reads runtime.json; a missing file yields a zero Runtime.
func (i *Instance) LoadRuntime() (Runtime, error) {
	var rt Runtime
	err := ReadJSON(i.Path(RuntimeFile), &rt)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return rt, err
}

// SaveRuntime writes runtime.json atomically.
func (i *Instance) SaveRuntime(rt Runtime) error { return WriteJSON(i.Path(RuntimeFile), rt) }

// ReadIdentity reads what the host wrote at the VM's create to pin and name
// it: its SSH host key (private, and public trimmed) and its seed's instance id.
func (i *Instance) ReadIdentity() (hostKey []byte, hostKeyPub, instanceID string, err error) {
	var files [3][]byte
	for n, f := range []string{HostKeyFile, HostKeyPubFile, InstanceIDFile} {
		if files[n], err = ReadFile(i.Path(f)); err != nil {
			return nil, "", "", err
		}
	}
	return files[0], strings.TrimSpace(string(files[1])), strings.TrimSpace(string(files[2])), nil
}

// SaveSpec writes spec.json atomically.
func (i *Instance) SaveSpec() error { return WriteJSON(i.Path(SpecFile), i.Spec) }

// Store gives access to instances under a layout.
type Store struct{ Layout Layout }

// New returns a store over layout.
func New(l Layout) *Store { return &Store{Layout: l} }

// ErrNameMismatch means a VM directory's spec names another VM (a copied or
// edited directory): the directory name is the VM's identity, so such a VM is
// broken, listed under its directory's name and removable by it.
var ErrNameMismatch = errors.New("a copied or edited directory")

// errNotDir: a VM's directory is a symlink (or a file), never what fvm makes.
var errNotDir = errors.New("not a directory")

// Get loads the named instance or returns ErrNotFound. The directory name is
// the identity: a spec naming another VM (ErrNameMismatch), or a directory
// that is a symlink, is an error, which makes the VM broken.
func (s *Store) Get(name string) (*Instance, error) {
	if err := vm.ValidateName(name); err != nil {
		return nil, err
	}
	inst := &Instance{Dir: s.Layout.InstanceDir(name)}
	if st, err := os.Lstat(inst.Dir); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("vm %q: its directory %q is %s, %w", name, inst.Dir, kindOf(st.Mode()), errNotDir)
	}
	if err := ReadJSON(inst.Path(SpecFile), &inst.Spec); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("vm %q: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("vm %q: %w", name, err)
	}
	if inst.Spec.Name != name {
		return nil, fmt.Errorf("vm %q: its %s names vm %q instead (%w)", name, SpecFile, inst.Spec.Name, ErrNameMismatch)
	}
	return inst, nil
}

// Exists reports whether the named instance directory exists (or anything
// else, a symlink too, is in its place).
func (s *Store) Exists(name string) bool {
	_, err := os.Lstat(s.Layout.InstanceDir(name))
	return err == nil
}

// Broken is a VM directory whose spec cannot be read: it is listed, with why,
// and can only be removed.
type Broken struct {
	Name   string
	Dir    string
	Reason string
}

// creatingPrefix names a VM directory being built (store.TempPrefix first):
// Create builds it, Commit renames it into place complete.
const creatingPrefix = TempPrefix + "creating-"

// IsCreating says whether a name in the VMs' directory is a VM being built
// (Create made it, Commit has not renamed it yet): what it reads is in use.
func IsCreating(name string) bool { return strings.HasPrefix(name, creatingPrefix) }

// removingPrefix names a VM directory being removed: Remove renames it away
// first, so a VM is listed whole or not at all.
const removingPrefix = TempPrefix + "removing-"

// List returns all instances sorted by name, and the directories that hold a
// VM whose spec cannot be read (broken). Temporaries of creates are neither.
func (s *Store) List() ([]*Instance, []Broken, error) {
	entries, err := os.ReadDir(s.Layout.VMsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var out []*Instance
	var broken []Broken
	for _, e := range entries {
		// A symlink in place of a VM directory is listed broken (Get says why).
		if !e.IsDir() && e.Type()&fs.ModeSymlink == 0 || IsTemp(e.Name()) {
			continue
		}
		inst, err := s.Get(e.Name())
		switch {
		case err == nil:
			out = append(out, inst)
		case vm.ValidateName(e.Name()) != nil:
			// Not a name fvm makes: nothing of fvm's, left alone.
		default:
			broken = append(broken, Broken{Name: e.Name(), Dir: s.Layout.InstanceDir(e.Name()), Reason: BrokenReason(e.Name(), err)})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Spec.Name < out[b].Spec.Name })
	return out, broken, nil
}

// BrokenReason says why the VM directory name cannot be used (err is Get's)
// and how to remove it, on one line.
func BrokenReason(name string, err error) string {
	msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("vm %q: ", name))
	why := fmt.Sprintf("its %s cannot be read (%s)", SpecFile, msg)
	switch {
	case errors.Is(err, ErrNotFound):
		why = fmt.Sprintf("its directory has no %s", SpecFile)
	case errors.Is(err, ErrNameMismatch), errors.Is(err, errNotDir):
		why = msg
	}
	return why + ": remove it with `fvm rm " + name + "`"
}

// Create makes a new instance with the spec saved, in a temporary directory
// beside the others (invisible to List): the caller fills it and then Commits
// it, or Discards it. A crash before Commit leaves only a temporary, which
// CleanStale removes; a VM directory appears complete or not at all.
func (s *Store) Create(spec vm.Spec) (*Instance, error) {
	if err := MkdirPrivate(s.Layout.VMsDir()); err != nil {
		return nil, err
	}
	if s.Exists(spec.Name) {
		return nil, fmt.Errorf("vm %q %w: pick another name or remove it with `fvm rm %s`", spec.Name, ErrExists, spec.Name)
	}
	dir, err := os.MkdirTemp(s.Layout.VMsDir(), creatingPrefix+spec.Name+"-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	inst := &Instance{Dir: dir, Spec: spec}
	if err := inst.SaveSpec(); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return inst, nil
}

// Commit renames a created instance into place (never over another VM) and
// points inst at its final directory.
func (s *Store) Commit(inst *Instance) error {
	final := s.Layout.InstanceDir(inst.Spec.Name)
	if err := RenameNoReplace(inst.Dir, final); err != nil {
		if errors.Is(err, ErrExists) {
			return fmt.Errorf("vm %q %w: pick another name or remove it with `fvm rm %s`", inst.Spec.Name, ErrExists, inst.Spec.Name)
		}
		return err
	}
	inst.Dir = final
	return nil
}

// Replace puts created, a directory made by Create, in the place of the VM
// of its name, in one atomic exchange: the VM's old files are then in
// created's temporary directory, which is returned for Discard. The VM is
// whole at every moment (a crash leaves the temporary to CleanStale).
func (s *Store) Replace(created *Instance) (old *Instance, err error) {
	final := s.Layout.InstanceDir(created.Spec.Name)
	if !strings.HasPrefix(filepath.Base(created.Dir), creatingPrefix) {
		return nil, fmt.Errorf("vm %q: %s is no temporary of a create", created.Spec.Name, created.Dir)
	}
	if err := exchange(created.Dir, final); err != nil {
		return nil, fmt.Errorf("vm %q: put its new directory in place: %w", created.Spec.Name, err)
	}
	SyncDir(s.Layout.VMsDir())
	old = &Instance{Dir: created.Dir, Spec: created.Spec}
	created.Dir = final
	return old, nil
}

// Discard removes an instance that was created but not committed.
func (s *Store) Discard(inst *Instance) error {
	if !strings.HasPrefix(filepath.Base(inst.Dir), creatingPrefix) {
		return fmt.Errorf("vm %q: %s is no temporary of a create", inst.Spec.Name, inst.Dir)
	}
	return os.RemoveAll(inst.Dir)
}

// removeAllSettling removes a half-made directory that a helper of the
// killed host (qemu-img creating a disk in it) may still be writing into as
// it dies: a file made during the removal fails it ("directory not
// empty"), so it is tried again for up to a second.
func removeAllSettling(p string) error {
	err := os.RemoveAll(p)
	for i := 0; err != nil && i < 20; i++ {
		time.Sleep(50 * time.Millisecond)
		err = os.RemoveAll(p)
	}
	return err
}

// CleanStale removes the temporaries of creates and removes that never
// finished (the host was killed): only the one host of a state directory makes them, so at
// its start every one is stale.
func (s *Store) CleanStale() (removed []string) {
	entries, _ := os.ReadDir(s.Layout.VMsDir())
	for _, e := range entries {
		if e.IsDir() && (strings.HasPrefix(e.Name(), creatingPrefix) || strings.HasPrefix(e.Name(), removingPrefix)) {
			p := filepath.Join(s.Layout.VMsDir(), e.Name())
			if removeAllSettling(p) == nil {
				removed = append(removed, p)
			}
		} else if p := filepath.Join(s.Layout.VMsDir(), e.Name()); e.Type()&fs.ModeSymlink != 0 && strings.HasPrefix(e.Name(), creatingPrefix) && !exists(p) {
			// The old path of a spare clone handed over (a link to its VM's directory) whose VM is gone.
			if os.Remove(p) == nil {
				removed = append(removed, p)
			}
		} else if IsTemp(e.Name()) && e.Type().IsRegular() && IsStale(filepath.Join(s.Layout.VMsDir(), e.Name())) {
			os.Remove(filepath.Join(s.Layout.VMsDir(), e.Name()))
		}
	}
	// Atomic writes inside VM directories (spec.json, runtime.json...) leave
	// their temporaries there when interrupted.
	insts, _ := os.ReadDir(s.Layout.VMsDir())
	for _, e := range insts {
		if !e.IsDir() || IsTemp(e.Name()) {
			continue
		}
		dir := filepath.Join(s.Layout.VMsDir(), e.Name())
		files, _ := os.ReadDir(dir)
		for _, f := range files {
			p := filepath.Join(dir, f.Name())
			if IsTemp(f.Name()) && f.Type().IsRegular() && strings.Contains(f.Name(), ".tmp-") && IsStale(p) {
				if os.Remove(p) == nil {
					removed = append(removed, p)
				}
			}
		}
	}
	return removed
}

// Remove deletes the instance directory and everything in it, out of sight
// first (RemoveTree): a crash part way never leaves a VM listed without its disk.
func (s *Store) Remove(name string) error {
	if err := vm.ValidateName(name); err != nil {
		return err
	}
	return RemoveTree(s.Layout.InstanceDir(name), removingPrefix)
}

// exists says whether p leads to something (a link: to something that is there).
func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
