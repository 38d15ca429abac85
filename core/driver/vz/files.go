package vz

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
)

// Files the vz driver keeps in an instance directory, beside store's
// (spec.json, seed.iso, efi-vars.fd, serial.log, runtime.json, host keys).
const (
	DiskFile      = "disk.raw"        // APFS clone of the base's raw conversion, grown to --disk
	PlanFile      = "vz-plan.json"    // the device plan the helper builds the VM from (Plan)
	PIDFile       = "vz.pid"          // the helper's pid, written by the helper
	ControlSocket = "vz.sock"         // the helper's control socket (0600)
	LogFile       = "vz.log"          // the helper's stderr
	FactsFile     = "vz.json"         // facts (facts)
	MachineIDFile = "vz-machine-id"   // VZGenericMachineIdentifier, made on first boot
	StateFile     = "vz-state.vzsave" // saved machine state of a suspended VM (macOS 14+, arm64)
)

// RawSuffix names a base's raw conversion beside it in the bases dir:
// BASE.vz.raw, removed with its base (image.DerivedPath).
const RawSuffix = "vz.raw"

// facts are what the driver records of a VM beside store.Runtime: the helper
// executable (to recognise the process again) and the raw conversion the
// disk was cloned from (so prune keeps it while the VM exists).
type facts struct {
	Helper string `json:"helper,omitempty"` // absolute path of the helper of the current run
	Raw    string `json:"raw,omitempty"`    // the base's raw conversion the disk was cloned from
	Base   string `json:"base,omitempty"`   // the cached base that conversion was made from
}

func loadFacts(dir string) (facts, error) {
	var f facts
	err := store.ReadJSON(filepath.Join(dir, FactsFile), &f)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return f, err
}

func saveFacts(dir string, f facts) error {
	return store.WriteJSON(filepath.Join(dir, FactsFile), f)
}

// paths are the absolute paths of an instance's files. The instance directory
// is on the helper's command line, which is how the process is recognised.
type paths struct {
	dir, disk, seed, plan, pid, sock, log, state string
}

func pathsOf(dir string) paths {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	j := func(n string) string { return filepath.Join(dir, n) }
	return paths{dir: dir, disk: j(DiskFile), seed: j(store.SeedFile), plan: j(PlanFile),
		pid: j(PIDFile), sock: store.SocketPath(dir, ControlSocket), log: j(LogFile), state: j(StateFile)}
}

// BasesInUse returns the raw conversion the VM's disk was cloned from and the
// base it was made from, so that prune keeps both while the VM exists.
func (d *Driver) BasesInUse(dir string) ([]string, error) {
	f, err := loadFacts(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range []string{f.Raw, f.Base} {
		if p != "" {
			out = append(out, filepath.Clean(p))
		}
	}
	return out, nil
}

// OpenLog opens the console log (driver.LogSerial) or the helper's log (LogFile).
func (d *Driver) OpenLog(inst *store.Instance, name string) (driver.LogFile, error) {
	return driver.OpenLocalLog(inst, name, LogFile)
}
