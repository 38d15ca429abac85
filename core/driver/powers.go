package driver

import (
	"context"
	"errors"
	"image"
	"net"
	"net/netip"
	"time"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Optional powers: named interfaces behind the capabilities in Caps. The host
// never checks for them itself: Bind and VM.Run resolve them once, together
// with the Caps that say the VM may use them, and only this file asserts.
type (
	// Checker is a driver that reports what this host has and lacks for it (`fvm check`).
	Checker interface {
		Checks(ctx context.Context) []Check
	}

	// StateKeeper is a driver that keeps a suspended VM's state (Caps.SaveState):
	// whether a VM has some, and discarding it (`fvm start --cold`).
	StateKeeper interface {
		HasSavedState(inst *store.Instance) bool
		DiscardState(inst *store.Instance) error
	}

	// Warmer is a driver whose VMs can start as clones of a warm snapshot
	// (Caps.WarmClone): a template VM of the same image and shape that the
	// host booted once under a generic identity (with this driver's Create and
	// Start), suspended (Suspender) and froze (FreezeSnapshot). core/warm
	// decides when a snapshot fits a VM; the driver makes the clone's disk
	// from it (CreateInput.Clone) and restores it (StartOptions.Clone).
	Warmer interface {
		// WarmFingerprint is what a snapshot must have been made with for spec
		// to be cloned from it (hypervisor, firmware, device set).
		WarmFingerprint(ctx context.Context, spec *vm.Spec) (string, error)
		// FreezeSnapshot makes a suspended template instance read-only and
		// returns the fingerprint of its saved state.
		FreezeSnapshot(inst *store.Instance) (string, error)
	}

	// Snapshotter is a driver whose VMs can be snapshotted (Caps.Snapshots).
	// A snapshot is a directory the host names and describes (its own
	// snapshot.json, as for a warm snapshot); in it the driver records the
	// VM's frozen disk (a read-only layer shared by the snapshot, the VM's
	// new top and every clone, kept where it outlives the VM that made it)
	// and, with memory, the saved state and firmware variables, in the form
	// a warm snapshot has: a clone is made from it with Create
	// (CreateInput.Clone) and restored with Start (StartOptions.Clone). A
	// running VM snapshots itself (LiveSnapshotter); see snapshot.go.
	Snapshotter interface {
		// Snapshot records a VM that does not run into dir (new, empty): its
		// disk is frozen now and the VM goes on on a new top; a suspended VM's
		// saved state goes with it (memory without a pause).
		Snapshot(ctx context.Context, inst *store.Instance, dir string) (SnapshotResult, error)
		// Revert makes a VM that does not run start again from the snapshot in
		// dir: a new top on its frozen disk, its firmware variables; what the
		// VM wrote since and a saved state of its own are discarded.
		Revert(ctx context.Context, inst *store.Instance, dir string) error
		// PruneLayers removes the frozen layers that are not in use: used
		// (every VM's BasesInUse, which lists the chains of the VM, its
		// journal and its snapshots) is asked while no snapshot is being
		// made. It says what it removed and freed.
		PruneLayers(used func() (map[string]bool, error)) (removed []string, freed int64, err error)
	}

	// LayerWatcher is a snapshotting driver whose frozen layers can fall out
	// of use on their own, with no command of the host's: a running VM's
	// disk flattened in the hypervisor's background. It calls freed (from
	// any goroutine) once a flattening ended, and the host prunes then.
	LayerWatcher interface {
		WatchLayers(freed func())
	}

	// LiveSnapshotter is a running machine that snapshots itself
	// (Caps.Snapshots) into dir: its disk frozen and, with memory, its
	// memory and devices saved, the guest paused as briefly as the driver
	// can (SnapshotResult.Pause); the VM runs on afterwards.
	LiveSnapshotter interface {
		Snapshot(ctx context.Context, dir string, memory bool) (SnapshotResult, error)
	}

	// Freezer is a running machine whose guest can wait frozen in place
	// (no CPU spent) and go on later, and whose directory may be renamed
	// while it runs: the driver's Attach finds it at the new path, and Moved
	// (told the old and new directory once the rename is done) keeps working
	// what the hypervisor opens again by the path it was given (QEMU reopens
	// a disk by name to change its access: on a suspend, a snapshot). The
	// host keeps spare clones so (core/daemon/spare.go).
	Freezer interface {
		Freeze(ctx context.Context) error
		Thaw(ctx context.Context) error
		Moved(from, to string) error
	}

	// Suspender is a machine whose run can be saved (Caps.SaveState): Suspend
	// saves the VM's memory and device state and ends the hypervisor. The
	// driver's next Start resumes from that state.
	Suspender interface {
		Suspend(ctx context.Context) error
	}

	// PortForwarder is a machine whose host port forwards into the guest's
	// network can change while it runs (Caps.Forwards == ForwardHypervisor:
	// QEMU's user network, hostfwd over QMP).
	PortForwarder interface {
		AddForward(ctx context.Context, host netip.AddrPort, guestPort uint16) error
		RemoveForward(ctx context.Context, host netip.AddrPort) error
	}

	// SerialPort is a machine whose serial port can be attached
	// (Caps.SerialAttach): a connection that types into the guest's console.
	// Its output is read from the serial log (OpenLog), which is complete and
	// shared by every session; what arrives on the connection only says that
	// more is there.
	SerialPort interface {
		DialSerial(ctx context.Context) (net.Conn, error)
	}

	// VNCDisplay is a machine that serves its screen as VNC (Caps.Display ==
	// DisplayVNC), one connection per viewer.
	VNCDisplay interface {
		DialVNC(ctx context.Context) (net.Conn, error)
	}

	// NativeDisplay is a machine that shows its screen in a native window of
	// its own (Caps.Display == DisplayNative: vz's NSWindow, owned by the VM's
	// helper process), brought to the front by ShowWindow.
	NativeDisplay interface {
		ShowWindow(ctx context.Context) error
	}

	// Screenshotter is a machine that can capture its screen as it is now
	// (Caps.Screenshot: `fvm screenshot`, and what the web console is checked against).
	Screenshotter interface {
		Screenshot(ctx context.Context) (image.Image, error)
	}

	// NICReporter is a running machine that can say its NIC's address and the
	// guest's addresses on it (`fvm inspect`): QEMU's from the guest agent,
	// vz's from the lease its network gives the NIC.
	NICReporter interface {
		NIC(ctx context.Context) (NIC, error)
	}

	// BasePruner is a driver that keeps copies of bases elsewhere (libvirt's
	// pools): it removes those no VM of its own was made from and whose
	// digest keep does not hold (image rm, image prune), naming what it removed.
	BasePruner interface {
		PruneBases(ctx context.Context, keep func(digest string) bool) ([]string, error)
	}

	// InstallBoot is a machine that may be an unattended install boot: the host
	// boots the VM again from its disk when InstallFinished says the install
	// left an installed disk (the qemu driver's direct kernel boot of an ISO).
	InstallBoot interface{ InstallFinished() bool }

	// GuestAgent is a machine whose guest may run an agent the host reaches
	// without the guest's network or SSH (Caps.GuestAgent: QEMU's guest agent
	// on a virtio-serial port). Whether the guest runs one is the guest's
	// business: GuestPing says so, and the host falls back to SSH without it.
	GuestAgent interface {
		// GuestPing returns once the agent answers, or an error wrapping
		// ErrNoAgent when it does not within ctx.
		GuestPing(ctx context.Context) error
		// GuestExec runs argv (argv[0] a path or a name in the agent's PATH)
		// as the agent's user (root) with stdin as its standard input, waits
		// until it exits and returns its status and output. Only the agent's
		// own failures are errors: a program's failure is its status.
		GuestExec(ctx context.Context, argv []string, stdin []byte) (GuestExit, error)
		// GuestSetTime sets the guest's system clock to t.
		GuestSetTime(ctx context.Context, t time.Time) error
	}
)

// LayersOf is a driver's snapshot power for work across its VMs (pruning
// frozen layers), nil when it makes no snapshots.
func LayersOf(d Driver) Snapshotter {
	s, _ := d.(Snapshotter)
	return s
}

// WatchLayers has freed called whenever one of d's running VMs may have
// left frozen layers unread (LayerWatcher); nothing for other drivers.
func WatchLayers(d Driver, freed func()) {
	if w, ok := d.(LayerWatcher); ok {
		w.WatchLayers(freed)
	}
}

// GuestExit is how a program run by a guest agent ended.
type GuestExit struct {
	Status int    // exit status; 128+N when killed by signal N
	Stdout []byte // captured output (the agent may cut it short)
	Stderr []byte
}

// ErrNoAgent means the guest's agent did not answer: the guest runs none, or
// it is stopped or broken.
var ErrNoAgent = errors.New("the guest agent does not answer")

// Checks is what a driver reports for `fvm check` (none if it is no Checker).
func Checks(ctx context.Context, d Driver) []Check {
	if c, ok := d.(Checker); ok {
		return c.Checks(ctx)
	}
	return nil
}

// PruneBases asks d, if it keeps copies of bases elsewhere, to remove those
// nothing needs (none otherwise).
func PruneBases(ctx context.Context, d Driver, keep func(digest string) bool) ([]string, error) {
	if p, ok := d.(BasePruner); ok {
		return p.PruneBases(ctx, keep)
	}
	return nil, nil
}

// VM is a driver bound to one VM: what the VM can do (Caps) and the driver's
// powers behind it, resolved once (Bind). A power is nil exactly when the VM
// cannot use it; Caps agrees with the powers.
type VM struct {
	Driver
	Caps   Caps
	States StateKeeper // saved state (nil: Caps.SaveState is off)
	Warm   Warmer      // warm clones (nil: Caps.WarmClone is off)
	Snaps  Snapshotter // named snapshots (nil: Caps.Snapshots is off)
}

// Bind asks the driver what a VM of spec can do and resolves its powers.
func Bind(ctx context.Context, d Driver, spec *vm.Spec) *VM {
	v := &VM{Driver: d, Caps: d.Caps(ctx, spec)}
	if s, ok := d.(StateKeeper); ok && v.Caps.SaveState {
		v.States = s
	} else if v.Caps.SaveState {
		v.Caps.Off(CapSaveState, "the "+d.Name()+" backend keeps no saved state")
	}
	if w, ok := d.(Warmer); ok && v.Caps.WarmClone {
		v.Warm = w
	} else if v.Caps.WarmClone {
		v.Caps.Off(CapWarmClone, "the "+d.Name()+" backend makes no warm snapshots")
	}
	if s, ok := d.(Snapshotter); ok && v.Caps.Snapshots {
		v.Snaps = s
	} else {
		v.Caps.Snapshots = false
		if v.Caps.Why[CapSnapshots] == "" {
			v.Caps.Off(CapSnapshots, "the "+d.Name()+" backend makes no snapshots")
		}
	}
	return v
}

// Run is a running machine with the powers its VM may use, resolved once
// (VM.Run): each is nil when the VM's Caps say it cannot, or the machine
// lacks it.
type Run struct {
	Machine
	Suspend Suspender       // Caps.SaveState
	Snap    LiveSnapshotter // Caps.Snapshots
	Forward PortForwarder   // Caps.Forwards == ForwardHypervisor
	Serial  SerialPort      // Caps.SerialAttach
	VNC     VNCDisplay      // Caps.Display == DisplayVNC
	Window  NativeDisplay   // Caps.Display == DisplayNative
	Screen  Screenshotter   // Caps.Screenshot
	Install InstallBoot     // may be an unattended install boot
	NIC     NICReporter     // can report its NIC and the guest's addresses
	Agent   GuestAgent      // Caps.GuestAgent
	Caps    Caps            // the VM's, for the reasons of what is nil
	Backend string
}

// Run resolves a running machine's powers.
func (v *VM) Run(m Machine) *Run {
	r := &Run{Machine: m, Caps: v.Caps, Backend: v.Name()}
	if s, ok := m.(Suspender); ok && v.Caps.SaveState {
		r.Suspend = s
	}
	if s, ok := m.(LiveSnapshotter); ok && v.Caps.Snapshots {
		r.Snap = s
	}
	if f, ok := m.(PortForwarder); ok && v.Caps.Forwards == ForwardHypervisor {
		r.Forward = f
	}
	if s, ok := m.(SerialPort); ok && v.Caps.SerialAttach {
		r.Serial = s
	}
	if d, ok := m.(VNCDisplay); ok && v.Caps.Display == DisplayVNC {
		r.VNC = d
	}
	if w, ok := m.(NativeDisplay); ok && v.Caps.Display == DisplayNative {
		r.Window = w
	}
	if s, ok := m.(Screenshotter); ok && v.Caps.Screenshot {
		r.Screen = s
	}
	if i, ok := m.(InstallBoot); ok {
		r.Install = i
	}
	if n, ok := m.(NICReporter); ok {
		r.NIC = n
	}
	if a, ok := m.(GuestAgent); ok && v.Caps.GuestAgent {
		r.Agent = a
	}
	return r
}

// BootAgentWait bounds the wait for the agent of a guest booting cold under
// TCG, where fvm's image reaches it 35–60 s into a boot (BootAgentBound).
var BootAgentWait = 2 * time.Minute // a var: tests shorten it

// BootAgentBound is how long to wait for the agent of a guest booting cold
// on accel before trying SSH without it: a hardware-accelerated boot reaches
// its agent in seconds.
func BootAgentBound(accel string) time.Duration {
	if accel == "tcg" {
		return BootAgentWait
	}
	return BootAgentWait / 6
}

// AwaitAgent returns true once ping reaches a guest agent, false when ctx ends
// first. Each ping gets a turn of two seconds: an agent that starts during a
// turn answers the request waiting on its channel at once, and a ping refused
// at once (no channel yet) waits out its turn. The daemon's cold-boot gate,
// the warm template's boot and the bench's bare QEMU all wait so.
func AwaitAgent(ctx context.Context, ping func(context.Context) error) bool {
	for ctx.Err() == nil {
		tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
		err := ping(tctx)
		if err == nil {
			tcancel()
			return true
		}
		<-tctx.Done()
		tcancel()
	}
	return false
}
