package driver

import (
	"fmt"

	"github.com/fvmhq/fvm/core/vm"
)

// Caps is a driver's answer, for one VM's spec, to what that VM can do. A
// capability that is off carries why in Why (one line for the user), so a
// per-VM reason (shares that cannot be saved, an arch without a VM generation
// ID) is said where it is decided: by the driver, once.
type Caps struct {
	Disk DiskFormat `json:"disk"`
	// OutlivesHost: the VM runs in a process of its own that survives the
	// host, and Attach re-adopts it. Without it the host stops it on exit.
	OutlivesHost bool `json:"outlivesHost"`
	// SerialAttach: a running machine's serial port can be attached
	// (SerialPort: `fvm console`, the web console's serial tab). The serial
	// output is always readable through OpenLog(LogSerial).
	SerialAttach bool `json:"serialAttach"`
	// Display is how the VM's screen is shown: DisplayNone, DisplayVNC (the
	// host's web console over VNCDisplay) or DisplayNative (a window of the
	// machine's own: NativeDisplay).
	Display DisplayKind `json:"display"`
	// Screenshot: the running machine can capture its screen (Screenshotter).
	Screenshot bool `json:"screenshot"`
	// GuestAgent: the running machine has a channel to an agent in the guest
	// (GuestAgent), which the guest may or may not answer on.
	GuestAgent bool `json:"guestAgent"`
	// SaveState: a running VM's state can be saved and resumed (Suspender,
	// StateKeeper).
	SaveState bool `json:"saveState"`
	// WarmClone: the VM can start as a clone of a warm snapshot of its image
	// (Warmer), and a template of its image and shape can be made.
	WarmClone bool `json:"warmClone"`
	// Snapshots: the VM's disk can be frozen into a named snapshot, restored
	// and forked (Snapshotter, LiveSnapshotter): with its memory where
	// SaveState, and clones of it restored running where WarmClone (they are
	// re-identified as warm clones are); otherwise disk only, booted cold.
	Snapshots bool `json:"snapshots"`
	// Shares: host directories can be shared into the guest (vm.Spec.Mounts).
	Shares bool `json:"shares"`
	// InstallISO: the VM can boot an installer ISO onto a blank disk (vm.Spec.ISO).
	InstallISO bool `json:"installISO"`
	// Rosetta: an arm64 guest can run x86-64 programs through Apple's Rosetta.
	Rosetta bool `json:"rosetta"`
	// Forwards is how host ports reach guest ports that open while the VM
	// runs (automatic forwards): ForwardHypervisor (PortForwarder) or over
	// the host's SSH connection.
	Forwards ForwardKind `json:"forwards"`
	// MAC is the address of the VM's NIC, which the seed's network config
	// matches; "" for cloudinit.DefaultMAC (QEMU's default).
	MAC string `json:"mac,omitempty"`
	// Hosts: the backend runs VMs on several hosts, one named per VM (--on).
	Hosts bool `json:"hosts,omitempty"`
	// SSHPort names a virtio-serial port on which the guest's sshd also
	// serves the host (cloudinit.SSHPort, written into the seed), for a
	// backend that reaches SSH that way (libvirt); "" for none.
	SSHPort string `json:"sshPort,omitempty"`
	// StaticForwardsBySSH: the host serves the VM's -p forwards itself, over
	// its SSH connection, for a driver that has no forwarding of its own.
	StaticForwardsBySSH bool `json:"staticForwardsBySSH,omitempty"`
	// LogFiles are the driver's own logs, beside the serial output, for
	// `Show Logs` and error reports (names for OpenLog; also files in the
	// instance directory for the local backends).
	LogFiles []string `json:"logFiles,omitempty"`
	// Why says, per capability that is off (a Cap* key), why: one line.
	Why map[string]string `json:"why,omitempty"`
}

// DisplayKind is how a VM's screen is shown.
type DisplayKind string

const (
	DisplayNone   DisplayKind = ""
	DisplayVNC    DisplayKind = "vnc"    // VNC from the driver (VNCDisplay), shown by the web console
	DisplayNative DisplayKind = "native" // a window the machine owns (NativeDisplay)
)

// ForwardKind is how automatic port forwards reach the guest.
type ForwardKind string

const (
	ForwardSSH        ForwardKind = "ssh"        // tunnels on the host's SSH connection only
	ForwardHypervisor ForwardKind = "hypervisor" // the hypervisor's user network (PortForwarder), SSH for loopback-only listeners
)

// Keys of Caps.Why: the capabilities a VM can lack.
const (
	CapSaveState  = "saveState"
	CapWarmClone  = "warmClone"
	CapSnapshots  = "snapshots"
	CapShares     = "shares"
	CapInstallISO = "installISO"
	CapRosetta    = "rosetta"
	CapSerial     = "serialAttach"
	CapDisplay    = "display"
	CapScreenshot = "screenshot"
)

// Off turns a capability off with why (for drivers building their Caps).
func (c *Caps) Off(key, why string) {
	switch key {
	case CapSaveState:
		c.SaveState = false
	case CapWarmClone:
		c.WarmClone = false
	case CapSnapshots:
		c.Snapshots = false
	case CapShares:
		c.Shares = false
	case CapInstallISO:
		c.InstallISO = false
	case CapRosetta:
		c.Rosetta = false
	case CapSerial:
		c.SerialAttach = false
	case CapDisplay:
		c.Display = DisplayNone
	case CapScreenshot:
		c.Screenshot = false
	}
	if c.Why == nil {
		c.Why = map[string]string{}
	}
	c.Why[key] = why
}

// WhyNot is why capability key is off, or a generic line naming the backend.
func (c Caps) WhyNot(key, backend string) string {
	if w := c.Why[key]; w != "" {
		return w
	}
	return fmt.Sprintf("the %s backend cannot do that (%s)", backend, key)
}

// need is an option of a spec and the capability it needs.
type need struct {
	key  string
	asks func(*vm.Spec) bool
	has  func(Caps) bool
	why  string // why not, when the driver says nothing more (%s: the backend)
}

// needs are what spec options ask of their backend: the one table the host
// checks a spec against its driver's Caps with (CheckNeeds), so that `auto`
// passes over a backend that cannot, and an explicit backend says why.
var needs = []need{
	{CapShares, func(s *vm.Spec) bool { return len(s.Mounts) > 0 }, func(c Caps) bool { return c.Shares },
		"the %s backend cannot share folders (-v)"},
	{CapInstallISO, func(s *vm.Spec) bool { return s.ISO != "" || s.AutoInstall }, func(c Caps) bool { return c.InstallISO },
		"the %s backend cannot install from an ISO (--iso): use --backend qemu"},
	{CapInstallISO, func(s *vm.Spec) bool { return s.Blank }, func(c Caps) bool { return c.InstallISO },
		"the %s backend cannot make a blank VM (it boots no installer ISO onto it later): use --backend qemu"},
	{CapRosetta, func(s *vm.Spec) bool { return s.Rosetta }, func(c Caps) bool { return c.Rosetta },
		"--rosetta needs the vz backend on an Apple silicon Mac; %s cannot run x86-64 programs through Rosetta"},
	{"hosts", func(s *vm.Spec) bool { return s.On != "" }, func(c Caps) bool { return c.Hosts },
		"--on names a libvirt host: the %s backend runs VMs on this machine only (use --backend libvirt)"},
}

// CheckNeeds refuses a spec whose options need what the backend's Caps lack;
// the error wraps ErrUnsupported and says why, in one line.
func CheckNeeds(backend string, spec *vm.Spec, c Caps) error {
	for _, n := range needs {
		if n.asks(spec) && !n.has(c) {
			why := c.Why[n.key]
			if why == "" {
				why = fmt.Sprintf(n.why, backend)
			}
			return fmt.Errorf("vm %q: %s: %w", spec.Name, why, ErrUnsupported)
		}
	}
	return nil
}

// List names the capabilities that are on, for people (`fvm check`, `fvm status`).
func (c Caps) List() []string {
	out := []string{"disk: " + string(c.Disk)}
	for _, f := range []struct {
		on   bool
		name string
	}{
		{c.OutlivesHost, "outlives-host"}, {true, "serial-console"}, {c.SerialAttach, "serial-attach"},
		{c.Display != DisplayNone, "display"}, {c.SaveState, "save-state"}, {c.WarmClone, "warm-clone"}, {c.Snapshots, "snapshots"},
		{c.Shares, "shares"}, {c.InstallISO, "install-iso"}, {c.Rosetta, "rosetta"}, {c.GuestAgent, "guest-agent"},
	} {
		if f.on {
			out = append(out, f.name)
		}
	}
	return out
}
