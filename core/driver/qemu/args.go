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
	Ports     []vm.PortForward
	SerialLog string
	QMPSocket string
	PIDFile   string
}

// BuildArgs returns QEMU's arguments (without the binary) for cfg.
func BuildArgs(cfg Config) []string {
	a := []string{
		// Only the devices listed here: no default NIC, VGA, monitor or CD-ROM,
		// and no host config files that would change what a VM looks like.
		"-nodefaults", "-no-user-config",
		"-name", cfg.Name,
		"-machine", machineType(cfg.Arch, cfg.Accel),
		"-accel", accelOption(cfg.Accel),
		"-cpu", cpuModel(cfg.Accel),
		"-smp", strconv.Itoa(cfg.CPUs),
		"-m", strconv.Itoa(cfg.MemoryMiB),
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + escape(cfg.Firmware.Code),
		"-drive", "if=pflash,format=raw,unit=1,file=" + escape(cfg.VarsFile),
		"-drive", "if=none,id=disk0,format=qcow2,discard=unmap,file=" + escape(cfg.Disk),
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
	}
	if cfg.Seed != "" {
		a = append(a,
			"-drive", "if=none,id=seed,format=raw,readonly=on,file="+escape(cfg.Seed),
			"-device", "virtio-blk-pci,drive=seed")
	}
	a = append(a,
		"-netdev", netdev(cfg.SSHPort, cfg.Ports),
		"-device", "virtio-net-pci,netdev=net0",
		"-device", "virtio-rng-pci",
		"-chardev", "file,id=serial0,append=on,path="+escape(cfg.SerialLog),
		"-serial", "chardev:serial0",
		"-qmp", "unix:"+escape(cfg.QMPSocket)+",server=on,wait=off",
		"-pidfile", cfg.PIDFile,
		"-display", "none",
	)
	return a
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

func accelOption(accel string) string {
	if accel == AccelTCG {
		return "tcg,thread=multi" // one host thread per vCPU
	}
	return accel
}

func cpuModel(accel string) string {
	if accel == AccelTCG {
		return "max" // every feature TCG can emulate
	}
	return "host"
}

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

// escape doubles commas, QEMU's way to put a comma inside an option value.
func escape(path string) string { return strings.ReplaceAll(path, ",", ",,") }
