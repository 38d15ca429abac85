package vz

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// PlanVersion is the plan format the helper understands; it refuses others,
// so a helper from another fvm never half-builds a VM.
const PlanVersion = 1

// The display every vz VM has: a virtio-gpu scanout of this size.
const (
	DisplayWidth  = 1280
	DisplayHeight = 800
)

// The user-mode network inside each helper (gvisor-tap-vsock): the guest gets
// GuestIP by a DHCP lease fixed to its MAC; HostLoopbackIP reaches the Mac's
// 127.0.0.1 (like QEMU's 10.0.2.2).
const (
	Subnet         = "192.168.127.0/24"
	GatewayIP      = "192.168.127.1"
	GatewayMAC     = "5a:94:ef:e4:0c:dd"
	GuestIP        = "192.168.127.2"
	HostLoopbackIP = "192.168.127.254"
	MTU            = 1500
)

// RosettaTag is the virtiofs tag of the Rosetta share, which the seed mounts.
const RosettaTag = cloudinit.RosettaTag

// Plan is a VM's devices as plain data: built by BuildPlan (pure, tested on
// every OS), saved in PlanFile, and turned into a VZVirtualMachineConfiguration
// by the helper. Everything the helper does to a VM is in here.
type Plan struct {
	Version     int      `json:"version"`
	Name        string   `json:"name"`
	Dir         string   `json:"dir"`
	Arch        vm.Arch  `json:"arch"`
	CPUs        uint     `json:"cpus"`
	MemoryBytes uint64   `json:"memoryBytes"`
	Boot        Boot     `json:"boot"`
	Platform    Platform `json:"platform"`
	Disks       []Disk   `json:"disks"`   // virtio block devices, in guest order
	Console     Console  `json:"console"` // virtio console (hvc0) to a file
	Network     Network  `json:"network"`
	Entropy     bool     `json:"entropy"`         // virtio-rng
	Balloon     bool     `json:"balloon"`         // virtio traditional memory balloon
	Display     Display  `json:"display"`         // virtio-gpu with USB keyboard and pointer
	Socket      bool     `json:"vsock"`           // virtio socket device
	Sound       bool     `json:"sound,omitempty"` // virtio sound with a host output stream (--sound=false: none)
	Rosetta     *Rosetta `json:"rosetta"`         // Rosetta directory share (arm64 guests on Apple silicon)
	Shares      []Share  `json:"shares"`          // virtiofs directory shares (-v)
	Control     Control  `json:"control"`         // the helper's own files
	RestoreFrom string   `json:"restoreFrom"`     // saved state to resume from instead of booting ("" = boot)
	SaveTo      string   `json:"saveTo"`          // where Suspend saves the state ("" = no save state here)
}

// Boot is the EFI boot loader; its variable store is created on first boot.
type Boot struct {
	EFIVariableStore string `json:"efiVariableStore"`
}

// Platform is the generic platform; the machine identifier is created on
// first boot and kept, so the guest sees the same machine every boot.
type Platform struct {
	MachineIdentifier string `json:"machineIdentifier"`
}

// Disk is a virtio block device on a raw image file.
type Disk struct {
	ID       string `json:"id"` // block device identifier (macOS 12.3+): /dev/disk/by-id/virtio-ID
	Path     string `json:"path"`
	ReadOnly bool   `json:"readOnly"`
}

// Console is the guest's virtio console, appended to a file (store.SerialLog).
type Console struct {
	Log string `json:"log"`
}

// Network is one virtio-net device on a file-handle attachment served by the
// helper's user-mode network, with its DHCP lease and 127.0.0.1 forwards.
type Network struct {
	MAC            string    `json:"mac"`
	Subnet         string    `json:"subnet"`
	GatewayIP      string    `json:"gatewayIP"`
	GatewayMAC     string    `json:"gatewayMAC"`
	GuestIP        string    `json:"guestIP"`
	HostLoopbackIP string    `json:"hostLoopbackIP"`
	MTU            int       `json:"mtu"`
	Forwards       []Forward `json:"forwards"` // the first is SSH
}

// Forward makes the helper listen on Host and connect each connection to the
// guest's GuestPort (TCP).
type Forward struct {
	Host      netip.AddrPort `json:"host"`
	GuestPort uint16         `json:"guestPort"`
}

// Display is the virtio-gpu scanout and its input devices.
type Display struct {
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Keyboard string `json:"keyboard"` // "usb"
	Pointer  string `json:"pointer"`  // "usb-screen-coordinate"
}

// Rosetta shares Apple's Rosetta translator into an arm64 guest under Tag.
type Rosetta struct {
	Tag string `json:"tag"`
}

// Share is a host directory shared into the guest over virtiofs under Tag
// (vm.ShareTag, which the seed mounts); ReadOnly is enforced by vz on the host.
type Share struct {
	Tag      string `json:"tag"`
	HostPath string `json:"hostPath"`
	ReadOnly bool   `json:"readOnly"`
}

// Control names the helper's pid file and control socket.
type Control struct {
	Socket  string `json:"socket"`
	PIDFile string `json:"pidFile"`
}

// Limits are what Virtualization.framework allows on this Mac (from the
// helper's probe: VZVirtualMachineConfiguration's minimum/maximum allowed
// CPU count and memory size). Zero values are not checked.
type Limits struct {
	MinCPUs   uint   `json:"minCPUs"`
	MaxCPUs   uint   `json:"maxCPUs"`
	MinMemory uint64 `json:"minMemory"`
	MaxMemory uint64 `json:"maxMemory"`
}

// PlanInput is everything a plan is made from.
type PlanInput struct {
	Spec     *vm.Spec
	Dir      string  // the instance directory (absolute)
	HostArch vm.Arch // vz runs guests of the Mac's own architecture only
	Limits   Limits
	SSHPort  int  // host port on 127.0.0.1 forwarded to the guest's 22
	Seed     bool // the cloud-init seed exists and is attached read-only
	// Restore resumes from the saved state in StateFile; CanSave says this
	// Mac can save state (macOS 14+, arm64), so Suspend may write it.
	Restore, CanSave bool
	// Rosetta is whether this Mac can share Rosetta (helper probe).
	Rosetta RosettaAvailability
}

// RosettaAvailability is VZLinuxRosettaDirectoryShare's availability.
type RosettaAvailability string

const (
	RosettaUnsupported  RosettaAvailability = "unsupported"   // not Apple silicon, or macOS < 13
	RosettaNotInstalled RosettaAvailability = "not-installed" // `softwareupdate --install-rosetta`
	RosettaInstalled    RosettaAvailability = "installed"
)

// BuildPlan turns a spec into the VM's devices. It is pure: every check that
// needs the host comes in through in (limits, arch, Rosetta).
func BuildPlan(in PlanInput) (Plan, error) {
	s := in.Spec
	fail := func(err error) (Plan, error) { return Plan{}, fmt.Errorf("vm %q: %w", s.Name, err) }
	if !filepath.IsAbs(in.Dir) {
		return fail(fmt.Errorf("instance directory %q is not absolute", in.Dir))
	}
	if s.Arch != in.HostArch {
		return fail(fmt.Errorf("%w: vz runs %s guests on this Mac, not %s: use --backend qemu for a %s VM", driver.ErrUnsupported, in.HostArch, s.Arch, s.Arch))
	}
	if err := checkLimits(s, in.Limits); err != nil {
		return fail(err)
	}
	if in.SSHPort <= 0 || in.SSHPort > 65535 {
		return fail(fmt.Errorf("SSH port %d is out of range", in.SSHPort))
	}
	j := func(name string) string { return filepath.Join(in.Dir, name) }
	p := Plan{
		Version:     PlanVersion,
		Name:        s.Name,
		Dir:         in.Dir,
		Arch:        s.Arch,
		CPUs:        uint(s.CPUs),
		MemoryBytes: uint64(s.MemoryMiB) << 20,
		Boot:        Boot{EFIVariableStore: j(store.EFIVarsFile)},
		Platform:    Platform{MachineIdentifier: j(MachineIDFile)},
		Disks:       []Disk{{ID: "fvm-root", Path: j(DiskFile)}},
		Console:     Console{Log: j(store.SerialLog)},
		Network: Network{
			MAC: GuestMAC(s).String(), Subnet: Subnet, GatewayIP: GatewayIP, GatewayMAC: GatewayMAC,
			GuestIP: GuestIP, HostLoopbackIP: HostLoopbackIP, MTU: MTU,
			Forwards: []Forward{{Host: netip.AddrPortFrom(loopback, uint16(in.SSHPort)), GuestPort: 22}},
		},
		Entropy: true,
		Balloon: true,
		Display: Display{Width: DisplayWidth, Height: DisplayHeight, Keyboard: "usb", Pointer: "usb-screen-coordinate"},
		Socket:  true,
		Shares:  []Share{},
		Sound:   !s.NoSound,
		// Through the run dir's short alias when the VM's directory is too deep (store.SocketPath).
		Control: Control{Socket: store.SocketPath(in.Dir, ControlSocket), PIDFile: j(PIDFile)},
	}
	if in.Seed {
		p.Disks = append(p.Disks, Disk{ID: "cidata", Path: j(store.SeedFile), ReadOnly: true})
	}
	for _, pf := range s.Ports {
		ip := pf.HostIP
		if !ip.IsValid() {
			ip = loopback
		}
		p.Network.Forwards = append(p.Network.Forwards, Forward{Host: netip.AddrPortFrom(ip, pf.HostPort), GuestPort: pf.GuestPort})
	}
	if s.Rosetta {
		if err := checkRosetta(s, in.Rosetta); err != nil {
			return fail(err)
		}
		p.Rosetta = &Rosetta{Tag: RosettaTag}
	}
	tags := map[string]bool{RosettaTag: s.Rosetta}
	for i, m := range s.Mounts {
		sh := Share{Tag: vm.ShareTag(i), HostPath: m.HostPath, ReadOnly: m.ReadOnly}
		switch {
		case sh.Tag == "" || len(sh.Tag) > 36: // virtiofs tags are at most 36 bytes
			return fail(fmt.Errorf("share tag %q must be 1 to 36 bytes", sh.Tag))
		case tags[sh.Tag]:
			return fail(fmt.Errorf("share tag %q is used twice", sh.Tag))
		case !filepath.IsAbs(sh.HostPath):
			return fail(fmt.Errorf("shared directory %q is not an absolute path", sh.HostPath))
		}
		tags[sh.Tag] = true
		p.Shares = append(p.Shares, sh)
	}
	if in.CanSave {
		p.SaveTo = j(StateFile)
	}
	if in.Restore {
		if !in.CanSave {
			return fail(fmt.Errorf("it has saved state, which this Mac cannot restore (macOS 14+ on Apple silicon): start it with --cold to boot afresh"))
		}
		p.RestoreFrom = j(StateFile)
	}
	return p, nil
}

var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// checkLimits holds the spec to Virtualization.framework's CPU and memory limits.
func checkLimits(s *vm.Spec, l Limits) error {
	cpus := uint(max(s.CPUs, 0))
	if l.MinCPUs > 0 && cpus < l.MinCPUs {
		return fmt.Errorf("--cpus %d is fewer than vz allows (%d): use --cpus %d or more", s.CPUs, l.MinCPUs, l.MinCPUs)
	}
	if l.MaxCPUs > 0 && cpus > l.MaxCPUs {
		return fmt.Errorf("--cpus %d is more than vz allows on this Mac (%d): use --cpus %d or fewer", s.CPUs, l.MaxCPUs, l.MaxCPUs)
	}
	mem := uint64(max(s.MemoryMiB, 0)) << 20
	if l.MinMemory > 0 && mem < l.MinMemory {
		return fmt.Errorf("--memory %s is less than vz allows (%s): use --memory %s or more",
			vm.FormatSize(int64(mem)), vm.FormatSize(int64(l.MinMemory)), vm.FormatSize(int64(roundUpMiB(l.MinMemory))))
	}
	if l.MaxMemory > 0 && mem > l.MaxMemory {
		return fmt.Errorf("--memory %s is more than vz allows on this Mac (%s): use --memory %s or less",
			vm.FormatSize(int64(mem)), vm.FormatSize(int64(l.MaxMemory)), vm.FormatSize(int64(l.MaxMemory&^(1<<20-1))))
	}
	return nil
}

func roundUpMiB(n uint64) uint64 { return (n + 1<<20 - 1) &^ (1<<20 - 1) }

// checkRosetta explains why --rosetta cannot be honoured, if it cannot.
func checkRosetta(s *vm.Spec, a RosettaAvailability) error {
	if s.Arch != vm.ARM64 {
		return fmt.Errorf("--rosetta runs x86-64 programs in arm64 guests; this VM is %s: drop --rosetta", s.Arch)
	}
	switch a {
	case RosettaInstalled:
		return nil
	case RosettaNotInstalled:
		return errors.New("--rosetta needs Rosetta on this Mac: install it with `softwareupdate --install-rosetta --agree-to-license`")
	}
	return errors.New("--rosetta needs Apple silicon and macOS 13+: drop --rosetta")
}
