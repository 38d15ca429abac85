package qemu

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/vm"
)

func baseConfig() Config {
	return Config{
		Name: "web1", Arch: vm.AMD64, Accel: AccelTCG, CPUs: 2, MemoryMiB: 2048,
		Firmware:     Firmware{Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		VarsFile:     "/d/efi-vars.fd",
		Disk:         "/d/disk.qcow2",
		Seed:         "/d/seed.iso",
		SSHPort:      40022,
		SerialLog:    "/d/serial.log",
		SerialSocket: "/d/serial.sock",
		QMPSocket:    "/d/qmp.sock",
		PIDFile:      "/d/qemu.pid",
		Display:      true,
		VNCSocket:    "/d/vnc.sock",
	}
}

// golden is the full command line for baseConfig with machine/accel/cpu filled in.
func golden(machine, accel, cpu, netdev string, seed bool) []string {
	a := []string{
		"-nodefaults", "-no-user-config",
		"-name", "web1",
		"-machine", machine,
		"-accel", accel,
		"-cpu", cpu,
		"-smp", "2",
		"-m", "2048",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
		"-drive", "if=pflash,format=raw,unit=1,file=/d/efi-vars.fd",
		"-drive", "if=none,id=disk0,format=qcow2,discard=unmap,file=/d/disk.qcow2",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
	}
	if seed {
		a = append(a, "-drive", "if=none,id=seed,format=raw,readonly=on,file=/d/seed.iso", "-device", "virtio-blk-pci,drive=seed")
	}
	return append(a,
		"-netdev", netdev,
		"-device", "virtio-net-pci,netdev=net0",
		"-device", "virtio-rng-pci",
		"-chardev", "socket,id=serial0,path=/d/serial.sock,server=on,wait=off,logfile=/d/serial.log,logappend=on",
		"-serial", "chardev:serial0",
		"-qmp", "unix:/d/qmp.sock,server=on,wait=off",
		"-pidfile", "/d/qemu.pid",
		"-display", "none",
	)
}

// withDisplay appends the display devices golden expects after the base line.
func withDisplay(a []string, gpu ...string) []string {
	for _, g := range gpu {
		a = append(a, "-device", g)
	}
	return append(a,
		"-device", "qemu-xhci,id=usb",
		"-device", "usb-kbd,bus=usb.0",
		"-device", "usb-tablet,bus=usb.0",
		"-vnc", "unix:/d/vnc.sock",
	)
}

const sshOnly = "user,id=net0,hostfwd=tcp:127.0.0.1:40022-:22"

func TestBuildArgs(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"x86_64 tcg", func(*Config) {}, withDisplay(golden("q35", "tcg,thread=multi", "max", sshOnly, true), "virtio-vga")},
		{"x86_64 kvm", func(c *Config) { c.Accel = AccelKVM }, withDisplay(golden("q35", "kvm", "host", sshOnly, true), "virtio-vga")},
		{"x86_64 no seed", func(c *Config) { c.Seed = "" }, withDisplay(golden("q35", "tcg,thread=multi", "max", sshOnly, false), "virtio-vga")},
		{"x86_64 no display", func(c *Config) { c.Display = false }, golden("q35", "tcg,thread=multi", "max", sshOnly, true)},
		{"aarch64 tcg", func(c *Config) { c.Arch = vm.ARM64 }, withDisplay(golden("virt,gic-version=max", "tcg,thread=multi", "max", sshOnly, true), "virtio-gpu-pci", "ramfb")},
		{"aarch64 kvm", func(c *Config) { c.Arch, c.Accel = vm.ARM64, AccelKVM }, withDisplay(golden("virt,gic-version=max", "kvm", "host", sshOnly, true), "virtio-gpu-pci", "ramfb")},
		{"aarch64 hvf", func(c *Config) { c.Arch, c.Accel = vm.ARM64, AccelHVF }, withDisplay(golden("virt", "hvf", "host", sshOnly, true), "virtio-gpu-pci", "ramfb")},
		{"aarch64 tcg pauth-impdef", func(c *Config) { c.Arch, c.PauthImpdef = vm.ARM64, true },
			withDisplay(golden("virt,gic-version=max", "tcg,thread=multi", "max,pauth-impdef=on", sshOnly, true), "virtio-gpu-pci", "ramfb")},
		{"aarch64 kvm ignores pauth-impdef", func(c *Config) { c.Arch, c.Accel, c.PauthImpdef = vm.ARM64, AccelKVM, true },
			withDisplay(golden("virt,gic-version=max", "kvm", "host", sshOnly, true), "virtio-gpu-pci", "ramfb")},
		{"aarch64 hvf ignores pauth-impdef", func(c *Config) { c.Arch, c.Accel, c.PauthImpdef = vm.ARM64, AccelHVF, true },
			withDisplay(golden("virt", "hvf", "host", sshOnly, true), "virtio-gpu-pci", "ramfb")},
		{"x86_64 ignores pauth-impdef", func(c *Config) { c.PauthImpdef = true }, withDisplay(golden("q35", "tcg,thread=multi", "max", sshOnly, true), "virtio-vga")},
		{"port forwards", func(c *Config) {
			c.Ports = []vm.PortForward{
				{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, GuestPort: 80},
				{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 5432, GuestPort: 5432},
				{HostIP: netip.MustParseAddr("::1"), HostPort: 8443, GuestPort: 443},
			}
		}, withDisplay(golden("q35", "tcg,thread=multi", "max",
			sshOnly+",hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:0.0.0.0:5432-:5432,hostfwd=tcp:[::1]:8443-:443", true), "virtio-vga")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.edit(&cfg)
			got := BuildArgs(cfg)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("BuildArgs:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestBuildArgsSaveRestoreDevices: the guest agent channel, the VM generation
// ID and a restore from a passed descriptor.
func TestBuildArgsSaveRestoreDevices(t *testing.T) {
	cfg := baseConfig()
	cfg.QGASocket, cfg.VMGenID, cfg.Incoming = "/d/qga.sock", "8f2c7a3e-1b4d-4e5f-9a6b-0c1d2e3f4a5b", "fd:3"
	got := strings.Join(BuildArgs(cfg), " ")
	for _, want := range []string{
		"-device virtio-rng-pci -chardev socket,id=qga0,server=on,wait=off,path=/d/qga.sock -device virtio-serial-pci,id=vser0 -device virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0 -device vmgenid,guid=8f2c7a3e-1b4d-4e5f-9a6b-0c1d2e3f4a5b -chardev socket,id=serial0,",
		"-vnc unix:/d/vnc.sock -incoming fd:3",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	cfg.Arch = vm.ARM64 // no vmgenid on arm64's virt machine here
	if got := strings.Join(BuildArgs(cfg), " "); strings.Contains(got, "vmgenid") {
		t.Errorf("vmgenid on arm64: %s", got)
	}
}

func TestBuildArgsEscapesCommas(t *testing.T) {
	cfg := baseConfig()
	cfg.Disk = "/home/a,b/disk.qcow2"
	cfg.PIDFile = "/home/a,b/qemu.pid"
	args := strings.Join(BuildArgs(cfg), " ")
	if !strings.Contains(args, "file=/home/a,,b/disk.qcow2") {
		t.Errorf("comma in a drive path not doubled: %s", args)
	}
	if !strings.Contains(args, "-pidfile /home/a,b/qemu.pid") {
		t.Errorf("-pidfile takes a plain path: %s", args)
	}
}

// TestBuildArgsARM64AllDevices is the whole command line of an arm64 guest under
// TCG with every device the host adds: memory virtiofsd can map and two shares
// (virtiofs, read-only 9p), the guest agent channel (virtio-serial works on virt as
// on q35), no vmgenid (virt has none), the serial socket on the PL011, the display
// (virtio-gpu with ramfb for the firmware: virt has no VGA) and an installer CD-ROM
// on virtio-scsi (virt has no AHCI).
func TestBuildArgsARM64AllDevices(t *testing.T) {
	cfg := baseConfig()
	cfg.Arch, cfg.PauthImpdef, cfg.TBSizeMiB = vm.ARM64, true, 256
	cfg.Firmware = Firmware{Code: "/usr/share/AAVMF/AAVMF_CODE.fd", Vars: "/usr/share/AAVMF/AAVMF_VARS.fd"}
	cfg.QGASocket, cfg.VMGenID = "/d/qga.sock", "8f2c7a3e-1b4d-4e5f-9a6b-0c1d2e3f4a5b"
	cfg.CDROM = "/isos/debian-13-arm64.iso"
	cfg.Shares = []Share{{Tag: "fvm0", HostPath: "/src", Socket: "/d/vfs0.sock"}, {Tag: "fvm1", HostPath: "/data", ReadOnly: true}}
	cfg.MAC, cfg.Sound, cfg.AudioDev = "52:54:00:ab:cd:ef", true, "coreaudio"
	want := []string{
		"-nodefaults", "-no-user-config",
		"-name", "web1",
		"-machine", "virt,gic-version=max,memory-backend=mem",
		"-accel", "tcg,thread=multi,tb-size=256",
		"-cpu", "max,pauth-impdef=on",
		"-smp", "2",
		"-m", "2048",
		"-object", "memory-backend-memfd,id=mem,size=2048M,share=on",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd",
		"-drive", "if=pflash,format=raw,unit=1,file=/d/efi-vars.fd",
		"-drive", "if=none,id=disk0,format=qcow2,discard=unmap,file=/d/disk.qcow2",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
		"-drive", "if=none,id=seed,format=raw,readonly=on,file=/d/seed.iso",
		"-device", "virtio-blk-pci,drive=seed",
		"-drive", "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=/isos/debian-13-arm64.iso",
		"-device", "virtio-scsi-pci,id=scsi0",
		"-device", "scsi-cd,bus=scsi0.0,drive=cd0,bootindex=1",
		"-netdev", sshOnly,
		"-device", "virtio-net-pci,netdev=net0,mac=52:54:00:ab:cd:ef",
		"-device", "virtio-rng-pci",
		"-chardev", "socket,id=qga0,server=on,wait=off,path=/d/qga.sock",
		"-device", "virtio-serial-pci,id=vser0",
		"-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
		"-chardev", "socket,id=vfs0,path=/d/vfs0.sock",
		"-device", "vhost-user-fs-pci,chardev=vfs0,tag=fvm0",
		"-fsdev", "local,id=fs1,path=/data,security_model=none,readonly=on",
		"-device", "virtio-9p-pci,fsdev=fs1,mount_tag=fvm1",
		"-chardev", "socket,id=serial0,path=/d/serial.sock,server=on,wait=off,logfile=/d/serial.log,logappend=on",
		"-serial", "chardev:serial0",
		"-qmp", "unix:/d/qmp.sock,server=on,wait=off",
		"-pidfile", "/d/qemu.pid",
		"-display", "none",
		"-device", "virtio-gpu-pci",
		"-device", "ramfb",
		"-device", "qemu-xhci,id=usb",
		"-device", "usb-kbd,bus=usb.0",
		"-device", "usb-tablet,bus=usb.0",
		"-vnc", "unix:/d/vnc.sock",
		"-audiodev", "coreaudio,id=snd0",
		"-device", "ich9-intel-hda,id=hda",
		"-device", "hda-output,bus=hda.0,audiodev=snd0,mixer=off",
	}
	if got := BuildArgs(cfg); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("BuildArgs:\n got %q\nwant %q", got, want)
	}
}

// TestBuildArgsSoundAndMAC: the sound card comes after every other device
// (their PCI addresses, and so the guest's interface names, stay what they
// were), with the host's backend; the NIC has the VM's address.
func TestBuildArgsSoundAndMAC(t *testing.T) {
	cfg := baseConfig()
	cfg.Sound, cfg.MAC = true, "52:54:00:12:ab:cd"
	want := withDisplay(golden("q35", "tcg,thread=multi", "max", sshOnly, true), "virtio-vga")
	for i, a := range want {
		if a == "virtio-net-pci,netdev=net0" {
			want[i] = "virtio-net-pci,netdev=net0,mac=52:54:00:12:ab:cd"
		}
	}
	want = append(want, "-audiodev", "none,id=snd0", "-device", "ich9-intel-hda,id=hda", "-device", "hda-output,bus=hda.0,audiodev=snd0,mixer=off")
	if got := BuildArgs(cfg); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("BuildArgs:\n got %q\nwant %q", got, want)
	}
	cfg.AudioDev = "wav,path=/d/sound.wav"
	if got := strings.Join(BuildArgs(cfg), " "); !strings.Contains(got, "-audiodev wav,path=/d/sound.wav,id=snd0 -device ich9-intel-hda") {
		t.Errorf("wav backend: %s", got)
	}
	// Neither the backend nor the MAC is part of the saved state's device set; the card is.
	a, b := cfg, cfg
	b.AudioDev, b.MAC = "coreaudio", "52:54:00:00:00:01"
	if deviceSet(a) != deviceSet(b) {
		t.Error("the sound backend or the MAC changed the device set")
	}
	b.Sound = false
	if deviceSet(a) == deviceSet(b) {
		t.Error("a VM without its sound card has the same device set")
	}
}
