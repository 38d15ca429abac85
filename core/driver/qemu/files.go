package qemu

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

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
	MemoryFile      = "memory.ram"        // a warm template's guest memory, which its clones map copy-on-write (memfile.go)
	InstallerKernel = "installer-vmlinuz" // kernel taken from the ISO for an unattended install boot
	InstallerInitrd = "installer-initrd"  // its initrd
)

// maxVarsFile bounds a VM's UEFI variable store when fvm reads it back (a
// clone copies its snapshot's): AAVMF's arm64 store is 64 MiB, OVMF's 528 KiB.
const maxVarsFile = 256 << 20

// runFacts are what the driver records of a run beside store.Runtime, saved
// before QEMU is launched so that a host that crashes right after can still
// recognise the process.
type runFacts struct {
	QEMU        string      `json:"qemu"`                // executable, to recognise the pid again
	PIDArg      string      `json:"pidArg,omitempty"`    // the -pidfile it was launched with, to recognise it after its directory moved (paths.launchedAs)
	Install     bool        `json:"install,omitempty"`   // an unattended install boot from the ISO
	VMGenID     string      `json:"vmgenid,omitempty"`   // the VM generation ID, kept for the VM's life
	Fingerprint Fingerprint `json:"fingerprint"`         // what a state saved from this run fits
	Boot        string      `json:"boot,omitempty"`      // how this run began (driver.MachineInfo.Boot)
	Virtiofsd   []int       `json:"virtiofsd,omitempty"` // pids of the shares' virtiofsd, which end with QEMU
	MAC         string      `json:"mac,omitempty"`       // the NIC's address, kept for the VM's life (runMAC)
	// AgentAtBoot: this run boots the kernel of an image fvm built (its
	// /etc/fvm/kernel-cmdline), which runs the guest agent from its boot.
	AgentAtBoot bool `json:"agentAtBoot,omitempty"`
	// Top is the disk QEMU writes, a name in the instance directory ("":
	// DiskFile); a snapshot moves it to a new file (layers.go). Kept for the
	// VM's life, across runs.
	Top string `json:"top,omitempty"`
	// Next journals a switch of Top in progress (a snapshot or a revert).
	Next *topSwitch `json:"next,omitempty"`
	// SharedMemory: the guest's memory is MemoryFile, shared (a warm
	// template): its saved state leaves the memory out (memfile.go).
	SharedMemory bool `json:"sharedMemory,omitempty"`
	// MappedMemory: the guest's memory maps its template's MemoryFile
	// privately (a warm clone's first run): snapshots pause it (memfile.go).
	MappedMemory bool `json:"mappedMemory,omitempty"`
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
	if err == nil {
		err = f.checkPaths()
	}
	return f, err
}

// checkPaths refuses facts whose disk names lead out of the VM's directory
// (Top, Next.Top, Next.Old are names in it) or whose layer is no clean
// absolute path: the files act on them (open, chmod, remove), so an edited
// qemu.json must not point them elsewhere.
func (f runFacts) checkPaths() error {
	names := []string{f.Top}
	if n := f.Next; n != nil {
		names = append(names, n.Top, n.Old)
		if n.Layer != "" && (!filepath.IsAbs(n.Layer) || filepath.Clean(n.Layer) != n.Layer) {
			return fmt.Errorf("%s: layer %q is not a clean absolute path (the file was edited: remove the VM)", FactsFile, n.Layer)
		}
	}
	for _, name := range names {
		if name != "" && (name != filepath.Base(name) || name == "." || name == "..") {
			return fmt.Errorf("%s: disk %q is not a file name in the VM's directory (the file was edited: remove the VM)", FactsFile, name)
		}
	}
	return nil
}

func saveFacts(inst *store.Instance, f runFacts) error {
	return store.WriteJSON(inst.Path(FactsFile), f)
}

// BasesInUse returns every file the VM's disk reads, in order from its top
// down (frozen layers, a warm snapshot's disk, the base), and what its
// snapshots, its origin (a clone's) and a snapshot in progress read: the
// ground truth for pruning bases, warm snapshots and layers.
func (d *Driver) BasesInUse(dir string) ([]string, error) {
	inst := &store.Instance{Dir: dir}
	f, err := loadFacts(inst)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	add := func(top string, self bool) error {
		if self && !seen[top] {
			seen[top] = true
			out = append(out, top)
		}
		ch, err := chain(top)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		for _, p := range ch {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
		return err
	}
	if err := add(filepath.Join(dir, f.topName()), false); err != nil {
		return out, err
	}
	if n := f.Next; n != nil {
		add(n.Layer, true)
		add(filepath.Join(dir, n.Top), false)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, store.SnapshotsDir, "*", DiskFile))
	for _, s := range append(snaps, filepath.Join(dir, store.OriginDir, DiskFile)) {
		if frozen, err := filepath.EvalSymlinks(s); err == nil {
			add(frozen, true)
		}
	}
	return out, nil
}
