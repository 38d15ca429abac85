package qemu

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/fvmhq/fvm/core/vm"
)

// Config is everything the QEMU command line depends on, resolved beforehand,
// so that BuildArgs is a pure function.
type Config struct {
	Name      string
	Arch      vm.Arch
	Accel     string // kvm, hvf or tcg (already resolved)
	CPUs      int
	MemoryMiB int
	Firmware  Firmware // Code is mapped read-only; Vars is ignored here
	VarsFile  string   // the per-VM copy of the variable store
	Disk      string   // qcow2 overlay
	Seed      string   // cloud-init ISO; "" when there is none
	SSHPort   int      // host port on 127.0.0.1 forwarded to guest port 22
	MAC       string   // the NIC's address (mac.go); "" for QEMU's default
	Ports     []vm.PortForward
	// The serial port is a socket the host attaches to (SerialSocket); QEMU
	// also logs everything the guest writes to SerialLog, attached or not.
	SerialLog    string
	SerialSocket string
	QMPSocket    string
	PIDFile      string
	QGASocket    string // the guest agent's channel; "" for none
	VMGenID      string // the VM generation ID (a UUID; x86-64): a new one tells a clone's kernel to reseed
	Incoming     string // restore the saved state from this migration URI ("fd:3"; "defer": QMP says, memfile.go) instead of booting
	// MemoryFile maps the guest's memory from this file (memfile.go): shared
	// (a warm template, whose memory the file then holds) with
	// MemoryShared, else private (a clone, copy-on-write over its template's).
	MemoryFile   string
	MemoryShared bool
	Shares       []Share
	TBSizeMiB    int // TCG's translation cache (0: QEMU's default, 1 GiB on 64-bit hosts)
	// Display: a graphics card with USB keyboard and tablet, served as VNC on
	// VNCSocket. Every VM has one; false is for measuring what it costs.
	Display   bool
	VNCSocket string
	// Sound: an HD Audio card (sound.go), with AudioDev as its host side
	// (an -audiodev backend without its id: "coreaudio", "pa", "none").
	Sound    bool
	AudioDev string

	// PauthImpdef: an arm64 guest under TCG authenticates pointers with QEMU's cheap
	// implementation-defined algorithm instead of emulating QARMA, which costs a large
	// share of an emulated arm64 boot. Only where this QEMU has the property.
	PauthImpdef bool

	// KernelBoot: QEMU boots Kernel and Initrd with Append itself, under its
	// own BIOS, with no UEFI firmware (fvm's own images: kernelboot.go).
	KernelBoot bool

	// ISO installs (vm.Spec.ISO).
	CDROM  string // installer ISO, a CD-ROM that boots after the disk; "" for none
	Kernel string // direct kernel boot (the unattended install boot); "" boots the firmware's way
	Initrd string
	Append string // kernel command line
	// GuestCmdline: Append is the guest's own command line (a direct boot of
	// its kernel), to which fvm adds panic=5 oops=panic (rebootOnPanic: the
	// guest reboots after a kernel panic or oops) and, where it turns fvm-init
	// on, fvm.net= (withGuestNet: the guest sets its address without DHCP).
	// Not part of the saved state's fingerprint: the command line is read
	// once, at a cold boot.
	GuestCmdline bool
	NoReboot     bool // a guest reboot ends QEMU instead
}

// BuildArgs returns QEMU's arguments (without the binary) for cfg.
func BuildArgs(cfg Config) []string {
	a := []string{
		// Only the devices listed here: no default NIC, VGA, monitor or CD-ROM,
		// and no host config files that would change what a VM looks like.
		"-nodefaults", "-no-user-config",
		"-name", cfg.Name,
		"-machine", machineType(cfg.Arch, cfg.Accel) + memoryBackend(cfg),
		"-accel", accelOption(cfg.Accel, cfg.TBSizeMiB),
		"-cpu", cpuModel(cfg.Arch, cfg.Accel, cfg.PauthImpdef),
		"-smp", strconv.Itoa(cfg.CPUs),
		"-m", strconv.Itoa(cfg.MemoryMiB),
	}
	if sharedMemory(cfg) { // virtiofsd maps the guest's memory
		a = append(a, "-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", cfg.MemoryMiB))
	} else if cfg.MemoryFile != "" {
		a = append(a, "-object", memoryFileObject(cfg))
	}
	if !cfg.KernelBoot {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escape(cfg.Firmware.Code),
			"-drive", "if=pflash,format=raw,unit=1,file="+escape(cfg.VarsFile))
	}
	a = append(a,
		"-drive", "if=none,id=disk0,format=qcow2,discard=unmap,file="+escape(cfg.Disk),
		"-device", "virtio-blk-pci,drive=disk0,bootindex="+strconv.Itoa(diskBootIndex(cfg)),
	)
	if cfg.Seed != "" {
		a = append(a,
			"-drive", "if=none,id=seed,format=raw,readonly=on,file="+escape(cfg.Seed),
			"-device", "virtio-blk-pci,drive=seed")
	}
	if cfg.CDROM != "" {
		a = append(a, cdromArgs(cfg.Arch, cfg.CDROM, diskBootIndex(cfg)+1)...)
	}
	a = append(a,
		"-netdev", netdev(cfg.SSHPort, cfg.Ports),
		"-device", "virtio-net-pci,netdev=net0"+macOption(cfg.MAC)+nicROM(cfg),
		"-device", "virtio-rng-pci",
	)
	if cfg.QGASocket != "" {
		a = append(a,
			"-chardev", "socket,id=qga0,server=on,wait=off,path="+escape(cfg.QGASocket),
			"-device", "virtio-serial-pci,id=vser0",
			"-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0")
	}
	if cfg.VMGenID != "" && hasVMGenID(cfg.Arch) {
		a = append(a, "-device", "vmgenid,guid="+cfg.VMGenID)
	}
	a = append(a, shareArgs(cfg)...)
	a = append(a,
		// A socket backend, unlike a pty, is no part of the migration stream, so
		// a saved VM restores with it; wait=off: QEMU does not wait for the host.
		"-chardev", "socket,id=serial0,path="+escape(cfg.SerialSocket)+",server=on,wait=off,logfile="+escape(cfg.SerialLog)+",logappend=on",
		"-serial", "chardev:serial0",
		"-qmp", "unix:"+escape(cfg.QMPSocket)+",server=on,wait=off",
		"-pidfile", cfg.PIDFile,
		"-display", "none",
	)
	if cfg.Display {
		a = append(a, displayArgs(cfg.Arch, cfg.VNCSocket)...)
	}
	if cfg.Sound { // last of the devices: the ones before keep their PCI addresses
		a = append(a, soundArgs(cfg.AudioDev)...)
	}
	if cfg.Kernel != "" {
		a = append(a, "-kernel", cfg.Kernel, "-initrd", cfg.Initrd, "-append", appendLine(cfg))
	}
	if cfg.NoReboot {
		a = append(a, "-no-reboot")
	}
	if cfg.Incoming != "" {
		a = append(a, "-incoming", cfg.Incoming)
	}
	return a
}

// nicROM: a direct kernel boot never boots from the network, so the NIC's
// iPXE option ROM, which the BIOS would initialise at every boot, is left out.
func nicROM(cfg Config) string {
	if cfg.KernelBoot {
		return ",romfile="
	}
	return ""
}

// diskBootIndex is the disk's place in the firmware's boot order: first, except that
// on x86 QEMU gives bootindex 0 to the option ROM that boots a -kernel.
func diskBootIndex(cfg Config) int {
	if cfg.Kernel != "" {
		return 1
	}
	return 0
}

// cdromArgs attach iso as a read-only CD-ROM with boot priority bootindex, right after
// the disk, so an installed disk wins and a blank one falls through to the ISO.
// On x86 it sits on q35's built-in AHCI controller, which every installer can read;
// arm64's virt machine has none, so there it is a virtio-scsi CD-ROM.
func cdromArgs(arch vm.Arch, iso string, bootindex int) []string {
	drive := "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=" + escape(iso)
	if arch == vm.ARM64 {
		return []string{"-drive", drive, "-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-cd,bus=scsi0.0,drive=cd0,bootindex=" + strconv.Itoa(bootindex)}
	}
	return []string{"-drive", drive, "-device", "ide-cd,drive=cd0,bootindex=" + strconv.Itoa(bootindex)}
}

// displayArgs add a graphics card, a USB keyboard and an absolute pointer (a tablet,
// so that a browser's pointer and the guest's agree), served as VNC on a Unix socket
// in the instance directory (private, no TCP port) for the web console or a VNC
// viewer. x86: virtio-vga, a virtio GPU with a VGA front for firmware and every
// installer. arm64 has no VGA: virtio-gpu-pci, plus ramfb for guests without a
// virtio-gpu driver. The GPU comes first, so it is QEMU's console 0, the one VNC
// and screendump show. All of them migrate (checked with a save and restore).
func displayArgs(arch vm.Arch, vncSocket string) []string {
	gpu := []string{"-device", "virtio-vga"}
	if arch == vm.ARM64 {
		gpu = []string{"-device", "virtio-gpu-pci", "-device", "ramfb"}
	}
	return append(gpu,
		"-device", "qemu-xhci,id=usb",
		"-device", "usb-kbd,bus=usb.0",
		"-device", "usb-tablet,bus=usb.0",
		"-vnc", "unix:"+escape(vncSocket),
	)
}

func machineType(arch vm.Arch, accel string) string {
	if arch == vm.ARM64 {
		if accel == AccelHVF {
			return "virt" // HVF uses QEMU's default GIC; gic-version=max is for TCG and KVM
		}
		return "virt,gic-version=max"
	}
	return "q35"
}

func accelOption(accel string, tbMiB int) string {
	if accel == AccelTCG {
		if tbMiB > 0 { // the cache is resident memory: QEMU's 1 GiB default is most of a small guest's RSS
			return fmt.Sprintf("tcg,thread=multi,tb-size=%d", tbMiB)
		}
		return "tcg,thread=multi" // one host thread per vCPU
	}
	return accel
}

func cpuModel(arch vm.Arch, accel string, pauthImpdef bool) string {
	if accel != AccelTCG {
		return "host"
	}
	if arch == vm.ARM64 && pauthImpdef {
		return "max," + pauthImpdefProp
	}
	return "max" // every feature TCG can emulate
}

// hasVMGenID reports whether fvm gives guests of arch a VM generation ID device
// (a new one at each restore of a warm snapshot makes the guest kernel reseed its
// random number generator). QEMU has it on x86 only: its arm64 virt machine has none.
func hasVMGenID(arch vm.Arch) bool { return arch == vm.AMD64 }

// netdev is user-mode networking with guest SSH and the -p forwards on the host.
func netdev(sshPort int, ports []vm.PortForward) string {
	var b strings.Builder
	fmt.Fprintf(&b, "user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22", sshPort)
	for _, p := range ports {
		fmt.Fprintf(&b, ",hostfwd=tcp:%s:%d-:%d", hostAddr(p.HostIP), p.HostPort, p.GuestPort)
	}
	return b.String()
}

func hostAddr(ip netip.Addr) string {
	if !ip.IsValid() {
		return "127.0.0.1"
	}
	if ip.Is6() && !ip.Is4In6() {
		return "[" + ip.String() + "]"
	}
	return ip.Unmap().String()
}

func macOption(mac string) string {
	if mac == "" {
		return ""
	}
	return ",mac=" + mac
}

// escape doubles commas, QEMU's way to put a comma inside an option value.
func escape(path string) string { return strings.ReplaceAll(path, ",", ",,") }

// memoryBackend names the shared memory backend on -machine when there is one.
func memoryBackend(cfg Config) string {
	if sharedMemory(cfg) {
		return ",memory-backend=mem"
	}
	if cfg.MemoryFile != "" {
		return ",memory-backend=" + ramID(cfg.Arch)
	}
	return ""
}

// appendLine is the kernel command line QEMU gets.
func appendLine(cfg Config) string {
	if cfg.GuestCmdline {
		return withGuestNet(rebootOnPanic(cfg.Append))
	}
	return cfg.Append
}
