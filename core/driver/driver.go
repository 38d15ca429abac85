// Package driver is the seam between the host and hypervisors.
//
// A backend is one Driver. The host (core/daemon) keeps every driver its
// platform has, in order of preference, and picks one per VM from
// vm.Spec.Backend, which is chosen at create and kept for the VM's life.
// core/daemon imports no concrete driver: core/host registers them.
//
// What a VM can do is answered once per VM (Caps, for its spec), never
// probed across the host: Bind resolves a driver's answer and the optional
// powers behind it into a VM, and a running machine's powers into a Run, and
// the host reads only those. A driver owns and names its own files (its disk,
// pid file, sockets, logs); core/store names only what every backend has.
// Nothing in the seam assumes the VM lives in a local directory: the seed
// reaches the driver as bytes, a base as its digest with a way to read it,
// the consoles and the screen come back as connections, logs as readers.
package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Driver creates, boots and deletes VMs of one hypervisor.
type Driver interface {
	// Name is the backend's name, as in vm.Spec.Backend and `--backend`.
	Name() string
	// Caps answers what a VM of spec can do with this driver, and why not
	// where it cannot. The host asks once per VM (Bind).
	Caps(ctx context.Context, spec *vm.Spec) Caps
	// Validate checks that this host can run the spec with this driver
	// (binaries, firmware, accel, arch, install media); errors wrap ErrUnsupported.
	// `--backend auto` picks the first driver whose Validate passes (after
	// the spec's needs were checked against its Caps: CheckNeeds).
	Validate(ctx context.Context, spec *vm.Spec) error
	// Create prepares the instance: its disks from in.Base (nil for a blank
	// disk) or from the warm snapshot in.Clone, and the seed from in.Seed,
	// placed where the VM reads it. It is idempotent. The host keys and spec
	// (store's files) are written by the host beforehand.
	Create(ctx context.Context, inst *store.Instance, in CreateInput) error
	// Start boots the VM and returns once the hypervisor runs (not when the
	// guest is ready): it resumes the VM's own saved state when it has some,
	// restores opts.Clone when the host says so, and boots cold otherwise.
	Start(ctx context.Context, inst *store.Instance, opts StartOptions) (Machine, error)
	// Attach re-adopts a VM left running by an earlier host; ErrNotRunning if none is.
	Attach(ctx context.Context, inst *store.Instance) (Machine, error)
	// Delete stops whatever of the instance still runs and removes what the
	// driver made outside the instance directory; the host removes the directory.
	Delete(ctx context.Context, inst *store.Instance) error
	// BasesInUse lists the cached base files that the VM in dir reads, from the
	// driver's own records: the ground truth for pruning, which also holds
	// when the VM's spec cannot be read. A dir with none of its files yields none.
	BasesInUse(dir string) ([]string, error)
	// OpenLog opens one of the VM's logs for reading: LogSerial (the guest's
	// serial output, complete since the VM's last boot) or a name in
	// Caps.LogFiles. A VM that never ran has none (fs.ErrNotExist).
	OpenLog(inst *store.Instance, name string) (LogFile, error)
}

// LogSerial names the guest's serial output in Driver.OpenLog.
const LogSerial = "serial"

// LogFile is a log as the host reads it: tails, follows and replays it.
// *os.File is one; a driver whose hypervisor writes the log elsewhere keeps a
// local copy and opens that.
type LogFile interface {
	io.ReadSeekCloser
	io.ReaderAt
	Stat() (fs.FileInfo, error)
}

// Base is the cached base disk a new VM is made from, as the host resolved and
// checked it (core/image): read-only, named by its SHA-256 (Digest), a
// standalone qcow2 or raw disk. A driver whose VMs live on this machine uses
// Path in place; one whose VMs live elsewhere copies it there once per Digest
// (Open). Drivers never inspect it again.
type Base struct {
	Path        string // the cached file on this machine
	Format      string // qcow2 or raw
	VirtualSize int64  // bytes the guest sees
	Digest      string // sha256:... of the file
}

// Open reads the base's bytes (for a driver that uploads it), opened as
// state files are (store.OpenRegular: no link followed, no FIFO waited on).
func (b *Base) Open() (*os.File, error) {
	f, _, err := store.OpenRegular(b.Path)
	return f, err
}

// CreateInput is what a new VM's disks and seed are made from.
type CreateInput struct {
	// Base is the image's base; nil for a blank disk (an ISO install).
	Base *Base
	// Clone is the warm snapshot (its directory, made by this driver's
	// Warmer) whose frozen disk the new disk is an overlay on: the host
	// decided that it fits (core/warm); "" for none.
	Clone string
	// Seed is the cloud-init seed (an ISO 9660 image) the VM boots with.
	Seed []byte
}

// StartOptions are the host's decisions for one start.
type StartOptions struct {
	// Clone is the warm snapshot whose memory this start restores: a clone's
	// first start, decided by the host (core/warm), which checked that it
	// fits; the driver trusts it. "" for a plain start.
	Clone string
	// Restore: Clone is one of the VM's own snapshots (`fvm snapshot
	// restore`): the same restore, but the machine stays itself (no
	// re-identification; a new VM generation ID, since its memory repeats):
	// the run is BootRestored.
	Restore bool
	// Template: the VM is booted to become a warm snapshot (core/warm). A
	// driver that can keeps its memory where its clones map it instead of
	// loading a copy each (qemu: memfile.go); others boot it as any VM.
	Template bool
}

// SnapshotResult is what a driver made of a snapshot.
type SnapshotResult struct {
	// Memory: the VM's memory and devices were saved with its disk.
	Memory bool
	// Fingerprint is what the saved state fits (Warmer.WarmFingerprint of a
	// VM of the same spec); "" without memory.
	Fingerprint string
	// Pause is how long the guest was paused (0 for a VM that did not run).
	Pause time.Duration
	// Notice says what the user should know, in one line (e.g. a disk
	// snapshot of a running VM whose filesystems could not be frozen).
	Notice string
}

// DiskFormat is how a driver makes a VM's disk from a cached base.
type DiskFormat string

const (
	// DiskQCOW2Overlay: a qcow2 overlay whose backing file is the base (QEMU).
	DiskQCOW2Overlay DiskFormat = "qcow2-overlay"
	// DiskRawClone: a copy-on-write clone (APFS clonefile) of a raw conversion of the base (vz).
	DiskRawClone DiskFormat = "raw-clone"
)

// Machine is a running VM.
type Machine interface {
	// Info describes the run: process, accelerator, notices.
	Info() MachineInfo
	State(ctx context.Context) (vm.State, error)
	// Shutdown asks the guest to power off (ACPI); the caller may Kill after a timeout.
	Shutdown(ctx context.Context) error
	Kill() error
	// Done is closed (after one value: the exit error, nil for a clean exit) when the VM ends.
	Done() <-chan error
	SSHEndpoint(ctx context.Context) (netip.AddrPort, error)
}

// MachineInfo are the facts of one run of a VM.
type MachineInfo struct {
	PID       int       // the hypervisor's process, 0 where there is none of its own
	Accel     string    // the accelerator it resolved (kvm, hvf, tcg, vz)
	Notice    string    // one line for the user, e.g. why TCG was chosen
	StartedAt time.Time // when this run began (zero when unknown)
	Boot      string    // how it began: BootCold, BootResumed or BootClone ("" when unknown: re-adopted)
	// ClockStale: the guest was restored and its clock could not be set by the
	// backend (no guest agent): the host sets it over SSH once that answers.
	ClockStale bool
	// ClockLeft: a warm clone restored without its clock set, left to its
	// re-identification, which sets it through the guest agent beside its
	// own work (the agent's first answer after a restore and its clock
	// setting took 0.3 s under emulation, all of it in the clone's wait), or
	// in its script.
	ClockLeft bool
	// AgentAtBoot: the guest starts its agent early in a boot (fvm's own
	// images): on a cold boot the host waits for it to answer before its
	// first SSH attempt (see the daemon's holder).
	AgentAtBoot bool
}

// How a run began (MachineInfo.Boot).
const (
	BootCold     = "cold"     // the firmware booted the disk
	BootResumed  = "resumed"  // restored from the VM's own saved state
	BootClone    = "clone"    // restored from a warm snapshot of its image, then re-identified
	BootRestored = "restored" // restored from one of its own snapshots (fvm snapshot restore)
)

// ErrNotRunning means no hypervisor process is running for the instance.
var ErrNotRunning = errors.New("not running")

// ErrUnsupported means the host cannot run this spec with this driver.
var ErrUnsupported = errors.New("unsupported on this host")

// Unavailable is a backend this build knows but this host cannot run (vz on
// Linux, or on macOS before 13): asking for it fails with Reason.
type Unavailable struct {
	Name   string
	Reason string // one line, e.g. "vz needs macOS 13+ (Apple's Virtualization framework)"
}

// Check is one host capability in `fvm check` (a Checker's answer).
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// OpenLocalLog is OpenLog for a backend whose logs are files in the instance
// directory: store.SerialLog for LogSerial, and its own, named in files. A
// log that is no regular file (a FIFO, a symlink) is refused, never waited on.
func OpenLocalLog(inst *store.Instance, name string, files ...string) (LogFile, error) {
	open := func(path string) (LogFile, error) {
		f, _, err := store.OpenRegular(path)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	if name == LogSerial {
		return open(inst.Path(store.SerialLog))
	}
	for _, f := range files {
		if f == name {
			return open(inst.Path(f))
		}
	}
	return nil, fmt.Errorf("vm %q has no log %q: it has %s", inst.Spec.Name, name, strings.Join(append([]string{LogSerial}, files...), ", "))
}
