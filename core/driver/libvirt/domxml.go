package libvirt

import (
	"encoding/xml"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// A VM is a libvirt domain named DomainPrefix+NAME whose <metadata> holds
// fvm's element (namespace MetaNS): that element, not the name, is what makes a
// domain fvm's, so domains people made themselves are never listed or touched.
const (
	DomainPrefix = "fvm-"
	MetaNS       = "https://github.com/fvmhq/fvm/xmlns/libvirt/1"
)

// Guest-side names of the devices fvm adds.
const (
	// SSHChannel is the virtio-serial port the guest's sshd serves (cloudinit.SSHPort).
	SSHChannel = "org.fvm.ssh.0"
	// AgentChannel is the QEMU guest agent's port.
	AgentChannel = "org.qemu.guest_agent.0"
	// guestMAC is the NIC's address: QEMU's default, which fvm's seeds name
	// (every user-mode NIC is a network of its own, so all VMs may share it).
	guestMAC = "52:54:00:12:34:56"
)

// Meta is fvm's metadata element: what fvm knows a domain by when it lists the
// daemon's domains (and what `virsh dumpxml` shows people).
type Meta struct {
	XMLName xml.Name `xml:"https://github.com/fvmhq/fvm/xmlns/libvirt/1 vm"`
	Name    string   `xml:"name"`           // the VM's fvm name
	Image   string   `xml:"image"`          // the image it was made from
	Digest  string   `xml:"digest"`         // sha256:... of its base
	User    string   `xml:"user"`           // login user
	Backend string   `xml:"backend"`        // fvm's libvirt backend version: "fvm-libvirt/1 (fvm VERSION)"
	Host    string   `xml:"host,omitempty"` // the fvm host's machine that made it (for people)
}

// domainConfig is everything that decides a domain's XML.
type domainConfig struct {
	Name      string // the VM's fvm name; the domain is DomainPrefix+Name
	UUID      string // fixed by fvm so a redefinition keeps the domain
	Type      string // kvm or qemu (TCG)
	Arch      string // libvirt's arch: x86_64, aarch64
	CPUs      int
	MemoryMiB int
	Pool      string // fvm's storage pool
	Disk      string // the VM's disk volume (qcow2 on its base)
	Seed      string // the cloud-init seed volume
	SerialLog string // path of the serial console's log on the libvirt host
	Meta      Meta
}

// Domain builds the domain XML of a VM: a pure function of c (golden tests in
// testdata/). Devices:
//   - UEFI (firmware auto-selection, no secure boot: fvm's images boot an
//     unsigned GRUB), q35 on x86_64, virt on aarch64;
//   - the disk (virtio) and the seed (a read-only virtio disk: NoCloud finds it
//     by its label), both volumes of fvm's pool, so nothing names a path of the
//     libvirt host but the serial log;
//   - QEMU's user-mode NIC (virtio): outbound network with no host bridge, and
//     no guest port listening on any address of the libvirt host;
//   - the serial console on a pty (virDomainOpenConsole) logged to SerialLog;
//   - channels: the guest agent, and the port the guest's sshd serves
//     (SSHChannel), both Unix sockets libvirt names and virDomainOpenChannel opens;
//   - VNC on a Unix socket libvirt names (no TCP port), virtio video, USB tablet
//     and keyboard, virtio RNG;
//   - a VM generation ID on x86_64 (a restored clone's kernel reseeds its RNG);
//     QEMU has none for arm64 virt.
func Domain(c domainConfig) (string, error) {
	if c.Name == "" || c.Pool == "" || c.Disk == "" || c.CPUs <= 0 || c.MemoryMiB <= 0 {
		return "", fmt.Errorf("domain xml: incomplete config %+v", c)
	}
	meta, err := xml.Marshal(c.Meta) // <vm xmlns="MetaNS">: its children are in it too
	if err != nil {
		return "", err
	}

	machine, video := "q35", "virtio"
	if c.Arch == "aarch64" {
		machine = "virt"
	}
	cpu := &libvirtxml.DomainCPU{Mode: "maximum"} // every feature TCG emulates
	if c.Type == "kvm" {
		cpu = &libvirtxml.DomainCPU{Mode: "host-passthrough"}
	}
	d := &libvirtxml.Domain{
		Type:     c.Type,
		Name:     DomainPrefix + c.Name,
		UUID:     c.UUID,
		Metadata: &libvirtxml.DomainMetadata{XML: string(meta)},
		Memory:   &libvirtxml.DomainMemory{Value: uint(c.MemoryMiB), Unit: "MiB"},
		VCPU:     &libvirtxml.DomainVCPU{Value: uint(c.CPUs)},
		OS: &libvirtxml.DomainOS{
			Type:     &libvirtxml.DomainOSType{Arch: c.Arch, Machine: machine, Type: "hvm"},
			Firmware: "efi",
			FirmwareInfo: &libvirtxml.DomainOSFirmwareInfo{Features: []libvirtxml.DomainOSFirmwareFeature{
				{Enabled: "no", Name: "enrolled-keys"}, {Enabled: "no", Name: "secure-boot"},
			}},
			BootDevices: []libvirtxml.DomainBootDevice{{Dev: "hd"}},
		},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		CPU:        cpu,
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Disks: []libvirtxml.DomainDisk{
				{
					Device: "disk",
					Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2", Discard: "unmap"},
					Source: &libvirtxml.DomainDiskSource{Volume: &libvirtxml.DomainDiskSourceVolume{Pool: c.Pool, Volume: c.Disk}},
					Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
				},
			},
			Interfaces: []libvirtxml.DomainInterface{{
				MAC:    &libvirtxml.DomainInterfaceMAC{Address: guestMAC},
				Source: &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}},
				Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
			}},
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Log:    serialLog(c.SerialLog),
			}},
			Consoles: []libvirtxml.DomainConsole{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainConsoleTarget{Type: "serial"},
			}},
			Channels: []libvirtxml.DomainChannel{channel(AgentChannel), channel(SSHChannel)},
			Graphics: []libvirtxml.DomainGraphic{{VNC: &libvirtxml.DomainGraphicVNC{
				Listeners: []libvirtxml.DomainGraphicListener{{Socket: &libvirtxml.DomainGraphicListenerSocket{}}},
			}}},
			Videos: []libvirtxml.DomainVideo{{Model: libvirtxml.DomainVideoModel{Type: video}}},
			Inputs: []libvirtxml.DomainInput{{Type: "tablet", Bus: "usb"}, {Type: "keyboard", Bus: "usb"}},
			RNGs: []libvirtxml.DomainRNG{{
				Model:   "virtio",
				Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
			}},
		},
	}
	if c.Seed != "" {
		d.Devices.Disks = append(d.Devices.Disks, libvirtxml.DomainDisk{
			Device:   "disk",
			Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
			Source:   &libvirtxml.DomainDiskSource{Volume: &libvirtxml.DomainDiskSourceVolume{Pool: c.Pool, Volume: c.Seed}},
			Target:   &libvirtxml.DomainDiskTarget{Dev: "vdb", Bus: "virtio"},
			ReadOnly: &libvirtxml.DomainDiskReadOnly{},
		})
	}
	if c.Arch == "x86_64" {
		d.GenID = &libvirtxml.DomainGenID{} // libvirt picks one; a restore under new XML gets another
	}
	return d.Marshal()
}

func serialLog(path string) *libvirtxml.DomainChardevLog {
	if path == "" {
		return nil
	}
	return &libvirtxml.DomainChardevLog{File: path, Append: "on"}
}

func channel(name string) libvirtxml.DomainChannel {
	return libvirtxml.DomainChannel{
		Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind"}},
		Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: name}},
	}
}

// parseMeta reads fvm's element from a domain's XML; ok is false for a domain
// that is not fvm's.
func parseMeta(domainXML string) (m Meta, ok bool) {
	var d struct {
		Metadata struct {
			Inner string `xml:",innerxml"`
		} `xml:"metadata"`
	}
	if err := xml.Unmarshal([]byte(domainXML), &d); err != nil {
		return Meta{}, false
	}
	dec := xml.NewDecoder(strings.NewReader(d.Metadata.Inner))
	for {
		tok, err := dec.Token()
		if err != nil {
			return Meta{}, false
		}
		if se, isStart := tok.(xml.StartElement); isStart && se.Name.Space == MetaNS && se.Name.Local == "vm" {
			if err := dec.DecodeElement(&m, &se); err != nil || m.Name == "" {
				return Meta{}, false
			}
			return m, true
		}
	}
}
