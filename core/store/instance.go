package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

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

// SaveSpec writes spec.json atomically.
func (i *Instance) SaveSpec() error { return WriteJSON(i.Path(SpecFile), i.Spec) }

// Store gives access to instances under a layout.
type Store struct{ Layout Layout }

// New returns a store over layout.
func New(l Layout) *Store { return &Store{Layout: l} }

// Get loads the named instance or returns ErrNotFound.
func (s *Store) Get(name string) (*Instance, error) {
	if err := vm.ValidateName(name); err != nil {
		return nil, err
	}
	inst := &Instance{Dir: s.Layout.InstanceDir(name)}
	if err := ReadJSON(inst.Path(SpecFile), &inst.Spec); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("vm %q: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("vm %q: %w", name, err)
	}
	return inst, nil
}

// Exists reports whether the named instance directory exists.
func (s *Store) Exists(name string) bool {
	_, err := os.Stat(s.Layout.InstanceDir(name))
	return err == nil
}

// List returns all instances sorted by name; directories without a readable spec are skipped.
func (s *Store) List() ([]*Instance, error) {
	entries, err := os.ReadDir(s.Layout.VMsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Instance
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if inst, err := s.Get(e.Name()); err == nil {
			out = append(out, inst)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Spec.Name < out[b].Spec.Name })
	return out, nil
}

// Create makes a new instance directory with the spec saved; it fails if the name is taken.
func (s *Store) Create(spec vm.Spec) (*Instance, error) {
	if err := os.MkdirAll(s.Layout.VMsDir(), 0o700); err != nil {
		return nil, err
	}
	dir := s.Layout.InstanceDir(spec.Name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("vm %q already exists: pick another name or remove it with `fvm rm %s`", spec.Name, spec.Name)
		}
		return nil, err
	}
	inst := &Instance{Dir: dir, Spec: spec}
	if err := inst.SaveSpec(); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return inst, nil
}

// Remove deletes the instance directory and everything in it.
func (s *Store) Remove(name string) error {
	if err := vm.ValidateName(name); err != nil {
		return err
	}
	return os.RemoveAll(s.Layout.InstanceDir(name))
}
