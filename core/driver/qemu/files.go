package qemu

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
)

// Files the qemu driver keeps in an instance directory, beside store's.
const (
	DiskFile        = "disk.qcow2"        // copy-on-write overlay on the cached base
	PIDFile         = "qemu.pid"          // QEMU's pid, written by QEMU (-pidfile)
	QMPSocket       = "qmp.sock"          // QEMU machine protocol
	LogFile         = "qemu.log"          // QEMU's stderr
	FactsFile       = "qemu.json"         // facts (runFacts)
	VNCSocket       = "vnc.sock"          // the display, served as VNC (0600)
	SerialSocket    = "serial.sock"       // the serial port (QEMU still logs it to store.SerialLog), 0600
	ScreenDumps     = "screendump-*.ppm"  // QMP screendump's output, read and removed at once (os.CreateTemp pattern)
	QGASocket       = "qga.sock"          // the guest agent's channel (qga.go)
	StateFile       = "state.qemu"        // memory and devices of a suspended VM (save.go)
	StateMetaFile   = "state.json"        // what the state fits (stateMeta); the state counts only with it
	InstallerKernel = "installer-vmlinuz" // kernel taken from the ISO for an unattended install boot
	InstallerInitrd = "installer-initrd"  // its initrd
)

// runFacts are what the driver records of a run beside store.Runtime, saved
// before QEMU is launched so that a host that crashes right after can still
// recognise the process.
type runFacts struct {
	QEMU        string      `json:"qemu"`                // executable, to recognise the pid again
	Install     bool        `json:"install,omitempty"`   // an unattended install boot from the ISO
	VMGenID     string      `json:"vmgenid,omitempty"`   // the VM generation ID, kept for the VM's life
	Fingerprint Fingerprint `json:"fingerprint"`         // what a state saved from this run fits
	Boot        string      `json:"boot,omitempty"`      // how this run began (driver.MachineInfo.Boot)
	Virtiofsd   []int       `json:"virtiofsd,omitempty"` // pids of the shares' virtiofsd, which end with QEMU
}

// loadFacts reads FactsFile. A VM started by an fvm from before drivers had
// files of their own kept the same keys in store.RuntimeFile: read them there,
// so that a QEMU left running across the upgrade is still re-adopted.
func loadFacts(inst *store.Instance) (runFacts, error) {
	var f runFacts
	err := store.ReadJSON(inst.Path(FactsFile), &f)
	if errors.Is(err, fs.ErrNotExist) {
		err = store.ReadJSON(inst.Path(store.RuntimeFile), &f)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	return f, err
}

func saveFacts(inst *store.Instance, f runFacts) error {
	return store.WriteJSON(inst.Path(FactsFile), f)
}

// BasesInUse returns the backing file of the VM's overlay: the base it reads.
func (d *Driver) BasesInUse(dir string) ([]string, error) {
	info, err := image.Inspect(filepath.Join(dir, DiskFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if info.BackingFile == "" {
		return nil, nil
	}
	b := info.BackingFile
	if !filepath.IsAbs(b) {
		b = filepath.Join(dir, b)
	}
	b = filepath.Clean(b)
	if filepath.Base(b) == DiskFile { // a clone's: the snapshot's frozen disk, and the base under it
		return snapshotBases(b), nil
	}
	return []string{b}, nil
}
