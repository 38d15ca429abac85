// Package driver is the seam between the host and hypervisors.
//
// A backend is one Driver. The host (core/daemon) keeps every driver its
// platform has, in order of preference, and picks one per VM from
// vm.Spec.Backend, which is chosen at create and kept for the VM's life.
// core/daemon imports no concrete driver: core/host wires them in.
//
// What the host needs to know about a driver is declared, never discovered:
// plain data in Features, and the few optional powers as the named interfaces
// below. A driver owns and names its own files in the instance directory (its
// disk, pid file, sockets, logs); core/store names only what every backend has.
package driver

import (
	"context"
	"errors"
	"image"
	"net/netip"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Driver creates, boots and deletes VMs of one hypervisor.
type Driver interface {
	// Name is the backend's name, as in vm.Spec.Backend and `--backend`.
	Name() string
	// Features declares what the driver's VMs can do and how they are kept.
	Features() Features
	// Validate checks that this host can run the spec with this driver
	// (binaries, firmware, accel, arch, install media); errors wrap ErrUnsupported.
	// `--backend auto` picks the first driver whose Validate passes.
	Validate(ctx context.Context, spec *vm.Spec) error
	// Create prepares the instance's disks from base (nil for an ISO install's
	// blank disk); it is idempotent. The seed, host keys and spec (store's files)
	// are written by the host beforehand.
	Create(ctx context.Context, inst *store.Instance, base *Base) error
	// Start boots the VM and returns once the hypervisor runs (not when the guest is ready).
	Start(ctx context.Context, inst *store.Instance) (Machine, error)
	// Attach re-adopts a VM left running by an earlier host; ErrNotRunning if none is.
	Attach(ctx context.Context, inst *store.Instance) (Machine, error)
	// Delete stops whatever of the instance still runs and removes what the
	// driver made outside the instance directory; the host removes the directory.
	Delete(ctx context.Context, inst *store.Instance) error
	// BasesInUse lists the cached base files that the VM in dir reads, from the
	// driver's own disk files: the ground truth for pruning, which also holds
	// when the VM's spec cannot be read. A dir with none of its files yields none.
	BasesInUse(dir string) ([]string, error)
}

// Base is the cached base disk a new VM is made from, as the host resolved and
// checked it (core/image): read-only, named by its SHA-256, a standalone qcow2
// or raw disk. Drivers make the VM's disk from it without inspecting it again.
type Base struct {
	Path        string
	Format      string // qcow2 or raw
	VirtualSize int64  // bytes the guest sees
	Digest      string // sha256:... of the file
}

// DiskFormat is how a driver makes a VM's disk from a cached base.
type DiskFormat string

const (
	// DiskQCOW2Overlay: a qcow2 overlay whose backing file is the base (QEMU).
	DiskQCOW2Overlay DiskFormat = "qcow2-overlay"
	// DiskRawClone: a copy-on-write clone (APFS clonefile) of a raw conversion of the base (vz).
	DiskRawClone DiskFormat = "raw-clone"
)

// Features are a driver's declared capabilities. The host reads them; it never
// probes a driver or a machine for powers.
type Features struct {
	Disk DiskFormat `json:"disk"`
	// OutlivesHost: VMs run in processes of their own that survive the host,
	// and Attach re-adopts them. Without it the host stops its VMs when it exits.
	OutlivesHost bool `json:"outlivesHost"`
	// SerialConsole: the guest's serial port is captured in store.SerialLog.
	SerialConsole bool `json:"serialConsole"`
	// SerialSocket names (in the instance directory) the Unix socket on which
	// the hypervisor serves the guest's serial port, one client at a time, while
	// it keeps writing store.SerialLog; "" when the console is read-only. The
	// host multiplexes it (`fvm console`, the web console's serial tab).
	SerialSocket string `json:"serialSocket,omitempty"`
	// Display: the VM has a screen that can be shown.
	Display bool `json:"display"`
	// VNCSocket names (in the instance directory) the Unix socket on which the
	// hypervisor serves the display as VNC; "" when it is shown another way.
	VNCSocket string `json:"vncSocket,omitempty"`
	// SaveState: a running VM's state can be saved to its directory and restored.
	SaveState bool `json:"saveState"`
	// Shares: host directories can be shared into the guest.
	Shares bool `json:"shares"`
	// InstallISO: the VM can boot an installer ISO onto a blank disk (vm.Spec.ISO).
	InstallISO bool `json:"installISO"`
	// Rosetta: arm64 guests can run x86-64 programs through Apple's Rosetta
	// (vm.Spec.Rosetta); the host refuses --rosetta on drivers without it.
	Rosetta bool `json:"rosetta"`
	// LogFiles are the driver's own logs in the instance directory (names,
	// beside store.SerialLog), for `Show Logs` and error reports.
	LogFiles []string `json:"logFiles,omitempty"`
}

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
}

// How a run began (MachineInfo.Boot).
const (
	BootCold    = "cold"    // the firmware booted the disk
	BootResumed = "resumed" // restored from the VM's own saved state
	BootClone   = "clone"   // restored from a warm snapshot of its image, then re-identified
)

// Optional powers: named interfaces the host checks for by name (never
// anonymous assertions), each used by the host.
type (
	// InstallBoot is a machine that may be an unattended install boot: the host
	// boots the VM again from its disk when InstallFinished says the install
	// left an installed disk (the qemu driver's direct kernel boot of an ISO).
	InstallBoot interface{ InstallFinished() bool }

	// Checker is a driver that reports what this host has and lacks for it (`fvm check`).
	Checker interface {
		Checks(ctx context.Context) []api.Check
	}

	// Suspender is a machine whose run can be saved (Features.SaveState):
	// Suspend writes the VM's memory and device state into its directory and
	// ends the hypervisor. The driver's next Start resumes from that state.
	Suspender interface {
		Suspend(ctx context.Context) error
	}

	// StateKeeper is a driver that keeps suspended state in the instance
	// directory: whether a VM has some, and discarding it (`fvm start --cold`).
	StateKeeper interface {
		HasSavedState(inst *store.Instance) bool
		DiscardState(inst *store.Instance) error
	}

	// Warmer is a driver whose VMs can start as clones of a warm snapshot: a
	// template VM of the same image and shape that the host booted once under a
	// generic identity (with this driver's Create and Start), suspended
	// (Suspender) and froze (FreezeSnapshot). A VM whose spec names a snapshot
	// (vm.Spec.Warm) gets its disk from it at Create; its first Start restores
	// the snapshot (MachineInfo.Boot == BootClone), and the host re-identifies
	// the guest before anyone can use it.
	Warmer interface {
		// WarmFingerprint is what a snapshot must have been made with for spec
		// to be cloned from it (QEMU, firmware, device set), or ErrUnsupported.
		WarmFingerprint(ctx context.Context, spec *vm.Spec) (string, error)
		// FreezeSnapshot makes a suspended template instance read-only and
		// returns the fingerprint of its saved state.
		FreezeSnapshot(inst *store.Instance) (string, error)
	}

	// PortForwarder is a machine whose host port forwards into the guest's
	// network can change while it runs (QEMU's user network: hostfwd over QMP).
	// The host uses it for automatic forwards of ports the guest listens on.
	PortForwarder interface {
		AddForward(ctx context.Context, host netip.AddrPort, guestPort uint16) error
		RemoveForward(ctx context.Context, host netip.AddrPort) error
	}

	// GuestNIC is a driver that gives each VM's NIC an address of its own,
	// which the host writes into the seed's network config (matched by MAC);
	// without it the seed names cloudinit.DefaultMAC (QEMU's default).
	GuestNIC interface {
		GuestMAC(spec *vm.Spec) string
	}

	// NativeDisplay is a machine that shows its screen in a native window of
	// its own (vz: an NSWindow owned by the VM's helper process), brought to the
	// front by ShowWindow. Machines without it are shown by the host's web
	// console (a VNC socket, Features.VNCSocket).
	NativeDisplay interface {
		ShowWindow(ctx context.Context) error
	}

	// Screenshotter is a machine that can capture its screen as it is now
	// (`fvm screenshot`, and what the web console is checked against).
	Screenshotter interface {
		Screenshot(ctx context.Context) (image.Image, error)
	}
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

// List names the features that are on, for people (`fvm check`, `fvm status`).
func (f Features) List() []string {
	out := []string{"disk: " + string(f.Disk)}
	for _, c := range []struct {
		on   bool
		name string
	}{
		{f.OutlivesHost, "outlives-host"}, {f.SerialConsole, "serial-console"}, {f.SerialSocket != "", "serial-attach"}, {f.Display, "display"},
		{f.SaveState, "save-state"}, {f.Shares, "shares"}, {f.InstallISO, "install-iso"}, {f.Rosetta, "rosetta"},
	} {
		if c.on {
			out = append(out, c.name)
		}
	}
	return out
}
