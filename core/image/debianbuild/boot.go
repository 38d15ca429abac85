package debianbuild

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/fvmhq/fvm/core/vm"
)

// grubTemplate is the config embedded in the standalone GRUB EFI binary. It finds the
// root filesystem by UUID (not by disk order) and boots the /vmlinuz and /initrd.img
// symlinks that Debian's kernel packages keep current, so kernel upgrades in the guest
// just work. x86's GRUB also talks to the first 16550 UART; on arm64 the firmware's
// console already is the PL011 serial port.
func grubTemplate(r release, a archInfo, kernelArgs string) string {
	var b strings.Builder
	b.WriteString("set timeout=0\nset default=0\n")
	if a.Arch == vm.AMD64 {
		b.WriteString("serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n")
	}
	fmt.Fprintf(&b, `insmod part_gpt
insmod ext2
insmod all_video
search --no-floppy --fs-uuid --set=root @ROOT_UUID@
menuentry 'Debian GNU/Linux %s' {
	linux /vmlinuz root=UUID=@ROOT_UUID@ ro console=tty0 console=hvc0 console=%s,115200%s
	initrd /initrd.img
}
`, r.Version, a.Console, kernelArgs)
	return b.String()
}

// grubModules are preloaded into the EFI binary; grubInstallModules is all the memdisk
// holds, which keeps the binary small (the firmware loads it slowly under TCG).
var (
	grubModules        = []string{"part_gpt", "ext2", "search_fs_uuid", "normal", "linux", "serial", "terminal"}
	grubInstallModules = []string{
		"part_gpt", "part_msdos", "ext2", "fat", "search", "search_fs_uuid", "search_label",
		"normal", "linux", "configfile", "echo", "test", "serial", "terminal", "gzio",
		"efi_gop", "all_video", "boot", "reboot", "halt", "ls", "cat", "sleep",
	}
)

// grubMkstandaloneArgs builds the EFI binary for target (x86_64-efi, arm64-efi) at out
// with cfgPath embedded as its grub.cfg.
func grubMkstandaloneArgs(target, out, cfgPath string) []string {
	return []string{
		"-O", target,
		"-o", out,
		"--modules=" + strings.Join(grubModules, " "),
		"--install-modules=" + strings.Join(grubInstallModules, " "),
		"--locales=", "--fonts=", "--themes=",
		"boot/grub/grub.cfg=" + cfgPath,
	}
}

// GPT type GUIDs.
const (
	espType   = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	linuxType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

const (
	sectorSize = 512
	alignment  = 1 << 20 // partitions start on MiB boundaries
)

// diskLayout places the ESP first and the root partition last, so growpart can grow
// the root into whatever space a larger VM disk adds behind it.
type diskLayout struct {
	ESPOffset, ESPSize   int64
	RootOffset, RootSize int64
	DiskSize             int64
}

func newDiskLayout(esp, root int64) diskLayout {
	up := func(n int64) int64 { return (n + alignment - 1) / alignment * alignment }
	l := diskLayout{ESPOffset: alignment, ESPSize: up(esp), RootSize: up(root)}
	l.RootOffset = l.ESPOffset + l.ESPSize
	// The backup GPT (33 sectors) needs room after the last partition.
	l.DiskSize = l.RootOffset + l.RootSize + alignment
	return l
}

// sfdiskScript is sfdisk's input for the layout.
func (l diskLayout) sfdiskScript() string {
	return fmt.Sprintf(`label: gpt
unit: sectors
sector-size: %d
first-lba: %d

start=%d, size=%d, type=%s, name="EFI System"
start=%d, size=%d, type=%s, name="Linux root"
`, sectorSize, alignment/sectorSize,
		l.ESPOffset/sectorSize, l.ESPSize/sectorSize, espType,
		l.RootOffset/sectorSize, l.RootSize/sectorSize, linuxType)
}

// newUUID returns a random (version 4) UUID for the root filesystem.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than returning an error)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newVolumeID returns a random FAT volume serial (8 hex digits) for mkfs.vfat -i.
func newVolumeID() string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%X", b[:])
}

// rootfsCommands turn the root tarball into an ext4 image with the given UUID, via
// the directory dir. tools maps tool names to paths; with "fakeroot" in it (building
// without root) tar and mkfs.ext4 share one fakeroot session, so the owners and device
// nodes tar records are what mkfs.ext4 -d writes.
func rootfsCommands(tools map[string]string, tarball, dir, img, uuid string) [][]string {
	tarArgv := []string{tools["tar"], "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", tarball, "-C", dir}
	mkfsArgv := []string{tools["mkfs.ext4"], "-q", "-F", "-L", rootLabel, "-U", uuid, "-d", dir, img}
	fakeroot, ok := tools["fakeroot"]
	if !ok {
		return [][]string{tarArgv, mkfsArgv}
	}
	script := shellQuote(tarArgv) + " && exec " + shellQuote(mkfsArgv)
	return [][]string{{fakeroot, "--", "sh", "-ec", script}}
}
