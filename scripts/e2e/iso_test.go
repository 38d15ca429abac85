//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
)

// The ISO tests install from a small installer ISO built here (upstream installer
// ISOs cannot be downloaded in this environment):
//
//   - the ISO is made by grub-mkrescue: GRUB EFI boots a Debian kernel (taken from the
//     locally built Debian image) with a tiny busybox initramfs, the "installer";
//   - an interactive install copies mini.raw onto the VM's blank disk and reboots:
//     a small GPT disk whose ESP holds a standalone GRUB with the same kernel and
//     initramfs inside, booted with "fvm.installed", on which the init script says so
//     and powers off. That the firmware then boots the disk, although the ISO is still
//     attached, is what the interactive test shows; it costs seconds, not a Debian boot;
//   - an unattended install copies the Debian image itself, raw, so that `fvm ssh`
//     reaches the installed system. To copy less under TCG, the image is split into
//     head.raw (everything before the root partition) and root.img (the root
//     filesystem shrunk to its minimum by resize2fs, written at the partition's
//     offset; cloud-init grows it back on first boot);
//   - the same kernel and initramfs sit at casper/vmlinuz and casper/initrd, where
//     Ubuntu's server ISOs keep them, so --auto-install boots them directly;
//   - in an unattended install the installer checks that "autoinstall" is on its kernel
//     command line and that the cidata seed holds an autoinstall config, and, as
//     subiquity does, hands the seed's autoinstall.user-data to the installed system's
//     cloud-init (datasource None, /etc/cloud/cloud.cfg.d/99-installer.cfg).
//
// Proof that the VM boots from its disk after the install, with the ISO still
// attached: the installer runs exactly once (its banner appears once in the serial
// log), then the installed disk boots: it reports itself (interactive) or `fvm ssh`
// reaches the installed system with its pinned host key (unattended).

const (
	installerBanner = "FVM-TEST-INSTALLER: start"
	installedMark   = "FVM-TEST-INSTALLER: installed"
	autoSeedMark    = "FVM-TEST-INSTALLER: autoinstall seed found"
	diskBootMark    = "FVM-TEST-INSTALLER: booted from the installed disk"
)

// installerCPUs is what the busybox installer and the mini disk run on: they
// are one shell script, and a second vCPU adds only TCG's cross-CPU code
// patching race (the kernel's "Oops: int3" while flipping a static key at
// ~2.5 s, then a halt: the test installer has no panic=), which CI hit.
const installerCPUs = "1"

// Modules the installer needs from the Debian kernel: the blank disk and the seed
// (virtio-blk), the ISO (q35's AHCI CD-ROM, ISO 9660), and the installed root (ext4).
var installerModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "ahci", "sr_mod", "isofs", "crc32c_generic", "ext4"}

const installerInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
exec >/dev/console 2>&1
if grep -qw fvm.installed /proc/cmdline; then
	echo "FVM-TEST-INSTALLER: booted from the installed disk at $(cut -d' ' -f1 /proc/uptime)s"
	poweroff -f
fi
echo "FVM-TEST-INSTALLER: start at $(cut -d' ' -f1 /proc/uptime)s"
for m in $(cat /modules.order); do insmod "/lib/modules/$m" || echo "insmod $m failed"; done
fail() { echo "FVM-TEST-INSTALLER: FAILED: $*"; sleep 2; poweroff -f; }
# The blank disk is the largest virtio disk; the other one is the cidata seed.
for i in $(seq 1 100); do [ -b /dev/sr0 ] && [ -b /dev/vdb ] && break; sleep 0.2; done
disk=vda seed=vdb
[ "$(cat /sys/block/vdb/size)" -gt "$(cat /sys/block/vda/size)" ] && { disk=vdb; seed=vda; }
mkdir -p /iso /seed /target
mount -t iso9660 -o ro /dev/sr0 /iso || fail "mount the installer ISO"
auto=0
if grep -qw autoinstall /proc/cmdline; then
	auto=1
	mount -t iso9660 -o ro /dev/$seed /seed || fail "mount the seed"
	grep -q '^autoinstall:' /seed/user-data && grep -q 'install-server: true' /seed/user-data || fail "no autoinstall config in the seed"
	echo "FVM-TEST-INSTALLER: autoinstall seed found"
fi
t0=$(cut -d' ' -f1 /proc/uptime)
if [ $auto = 1 ]; then
	dd if=/iso/head.raw of=/dev/$disk bs=1M || fail "copy the partition table and ESP"
	dd if=/iso/root.img of=/dev/$disk bs=1M seek=$(cat /iso/root-offset-mib) || fail "copy the root filesystem"
else
	dd if=/iso/mini.raw of=/dev/$disk bs=1M || fail "copy the small bootable disk"
fi
sync
echo "FVM-TEST-INSTALLER: copied from ${t0}s to $(cut -d' ' -f1 /proc/uptime)s"
blockdev --rereadpt /dev/$disk
if [ $auto = 1 ]; then
	# As subiquity does: the installed system's cloud-init gets autoinstall.user-data.
	for i in $(seq 1 50); do [ -b /dev/${disk}2 ] && break; sleep 0.1; done
	mount -t ext4 /dev/${disk}2 /target || fail "mount the installed root"
	# As subiquity does, the installed system's network is the installer's: DHCPv4
	# on this NIC, under the name udev will give it (enpBsS from its PCI address).
	# cloud-init's own fallback adds DHCPv6, which QEMU's user network does not
	# serve: ifup would wait 5 minutes for it, twice.
	nic=$(for n in /sys/class/net/*; do [ -e $n/device ] && echo $n; done | head -n 1)
	[ -n "$nic" ] || fail "no network interface"
	dev=$(readlink -f $nic/device)
	case $(basename $dev) in virtio*) dev=$(dirname $dev) ;; esac
	pci=$(basename $dev) # 0000:00:03.0
	slot=$(echo $pci | cut -d: -f3)
	nicname=enp$((0x$(echo $pci | cut -d: -f2)))s$((0x${slot%.*}))
	[ "${slot#*.}" = 0 ] || nicname=${nicname}f${slot#*.}
	echo "FVM-TEST-INSTALLER: the installed system gets DHCPv4 on $nicname"
	{
		echo "network:"
		echo "  version: 2"
		echo "  ethernets:"
		echo "    $nicname:"
		echo "      match: {macaddress: '$(cat $nic/address)'}"
		echo "      set-name: $nicname"
		echo "      dhcp4: true"
		echo "datasource_list: [ None ]"
		echo "datasource:"
		echo "  None:"
		echo "    metadata: {instance-id: fvm-installed}"
		echo "    userdata_raw: |"
		echo "      #cloud-config"
		awk '/^  user-data:/ {on=1; next} on && /^  [^ ]/ {on=0} on {print "      " substr($0, 5)}' /seed/user-data
	} > /target/etc/cloud/cloud.cfg.d/99-installer.cfg
	umount /target
fi
sync
echo "FVM-TEST-INSTALLER: installed at $(cut -d' ' -f1 /proc/uptime)s"
if [ $auto = 1 ]; then poweroff -f; else reboot -f; fi
`

const installerGrubCfg = `set timeout=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry "fvm test installer" {
	linux /boot/vmlinuz console=ttyS0,115200
	initrd /boot/initrd
}
`

// miniDiskGrubCfg is embedded in the mini disk's standalone GRUB, whose memdisk also
// holds the kernel and initramfs.
const miniDiskGrubCfg = `set timeout=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry "fvm test installed disk" {
	linux /vmlinuz console=ttyS0,115200 fvm.installed
	initrd /initrd
}
`

// buildMiniDisk writes a small GPT disk image at out whose only partition is an ESP
// with a standalone GRUB (\EFI\BOOT\BOOTX64.EFI, the removable-media path firmware
// boots) that carries kernel and initrd in its memdisk.
func buildMiniDisk(t *testing.T, work, kernel, initrd, out string) {
	t.Helper()
	cfg := filepath.Join(work, "mini-grub.cfg")
	os.WriteFile(cfg, []byte(miniDiskGrubCfg), 0o644)
	efi := filepath.Join(work, "BOOTX64.EFI")
	run(t, "grub-mkstandalone", "-O", "x86_64-efi", "-o", efi,
		"--modules=linux normal serial terminal", "--install-modules=linux normal serial terminal echo test boot",
		"--locales=", "--fonts=", "--themes=",
		"boot/grub/grub.cfg="+cfg, "vmlinuz="+kernel, "initrd="+initrd)
	esp := filepath.Join(work, "mini-esp.img")
	const espMiB = 32
	run(t, "mkfs.vfat", "-C", esp, strconv.Itoa(espMiB<<10))
	run(t, "mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
	run(t, "mcopy", "-i", esp, efi, "::/EFI/BOOT/BOOTX64.EFI")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate((espMiB + 2) << 20) // 1 MiB for the GPT in front, room for the backup GPT behind
	f.Close()
	cmd := exec.Command("sfdisk", "--quiet", out)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nstart=2048, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n", espMiB<<11))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, b)
	}
	run(t, "dd", "if="+esp, "of="+out, "bs=1M", "seek=1", "conv=notrunc", "status=none")
}

func needTools(t *testing.T) {
	t.Helper()
	for tool, pkg := range map[string]string{
		"grub-mkrescue": "grub-common grub-efi-amd64-bin", "xorriso": "xorriso", "mformat": "mtools",
		"busybox": "busybox-static", "debugfs": "e2fsprogs", "sfdisk": "fdisk", "qemu-img": "qemu-utils",
		"grub-mkstandalone": "grub-common", "mkfs.vfat": "dosfstools", "xz": "xz-utils",
	} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install -y %s)", tool, pkg)
		}
	}
	if _, err := os.Stat("/usr/lib/grub/x86_64-efi"); err != nil {
		t.Skip("GRUB EFI modules not installed (apt-get install -y grub-efi-amd64-bin)")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debianBase is the cached base file of the locally built Debian image, built when
// missing. Any build will do (the ISO tests do not test the image builder), so an
// existing one is used even if the recipe changed since.
func debianBase(t *testing.T) string {
	t.Helper()
	find := func() string {
		var imgs []api.Image
		if err := json.Unmarshal([]byte(mustFVM(t, "images", "--format", "json")), &imgs); err != nil {
			t.Fatal(err)
		}
		for _, im := range imgs {
			if im.Name == "debian-local" {
				return im.Path
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	ensureImage(t)
	if p := find(); p != "" {
		return p
	}
	t.Fatal("no debian-local image after the build")
	return ""
}

// buildInstallerISO makes the test installer ISO (see the top of this file).
func buildInstallerISO(t *testing.T) string {
	t.Helper()
	t0 := time.Now()
	work := t.TempDir()
	stage := filepath.Join(work, "iso")
	for _, d := range []string{"boot/grub", "casper"} {
		os.MkdirAll(filepath.Join(stage, d), 0o755)
	}
	payload := filepath.Join(work, "payload.raw")
	run(t, "qemu-img", "convert", "-O", "raw", debianBase(t), payload)

	// Split the image at the root filesystem, its second partition, and shrink that.
	var pt struct {
		PartitionTable struct {
			Partitions []struct{ Start int64 } `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(run(t, "sfdisk", "-J", payload)), &pt); err != nil || len(pt.PartitionTable.Partitions) < 2 {
		t.Fatalf("partition table of the Debian image: %v", err)
	}
	rootOff := pt.PartitionTable.Partitions[1].Start * 512
	if rootOff%(1<<20) != 0 {
		t.Fatalf("root partition at %d bytes, not MiB-aligned", rootOff)
	}
	head := filepath.Join(stage, "head.raw")
	root := filepath.Join(stage, "root.img")
	run(t, "dd", "if="+payload, "of="+head, "bs=1M", fmt.Sprintf("count=%d", rootOff>>20), "status=none")
	run(t, "dd", "if="+payload, "of="+root, "bs=1M", fmt.Sprintf("skip=%d", rootOff>>20), "conv=sparse", "status=none")
	os.Remove(payload)
	if out, err := exec.Command("e2fsck", "-fy", root).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 { // 1: errors corrected
			t.Fatalf("e2fsck: %v\n%s", err, out)
		}
	}
	run(t, "resize2fs", "-M", root)
	var blocks, bsize int64
	for _, line := range strings.Split(run(t, "dumpe2fs", "-h", root), "\n") {
		if v, ok := strings.CutPrefix(line, "Block count:"); ok {
			fmt.Sscan(v, &blocks)
		}
		if v, ok := strings.CutPrefix(line, "Block size:"); ok {
			fmt.Sscan(v, &bsize)
		}
	}
	if blocks == 0 || bsize == 0 {
		t.Fatal("dumpe2fs: no block count")
	}
	if err := os.Truncate(root, blocks*bsize); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stage, "root-offset-mib"), []byte(fmt.Sprintf("%d\n", rootOff>>20)), 0o644)

	// The kernel and its modules come from the same root filesystem.
	debugfs := func(req string) string { return run(t, "debugfs", "-R", req, root) }
	var kver string
	for _, f := range strings.Fields(debugfs("ls /boot")) {
		if v, ok := strings.CutPrefix(f, "vmlinuz-"); ok {
			kver = v
		}
	}
	if kver == "" {
		t.Fatal("no kernel in the Debian image's /boot")
	}
	kernel := filepath.Join(work, "vmlinuz")
	debugfs(fmt.Sprintf("dump /boot/vmlinuz-%s %s", kver, kernel))
	moddir := "/usr/lib/modules/" + kver
	depFile := filepath.Join(work, "modules.dep")
	debugfs(fmt.Sprintf("dump %s/modules.dep %s", moddir, depFile))
	builtinFile := filepath.Join(work, "modules.builtin")
	debugfs(fmt.Sprintf("dump %s/modules.builtin %s", moddir, builtinFile))
	order := moduleOrder(t, depFile, builtinFile, installerModules)

	rd := newCPIO()
	busybox, _ := exec.LookPath("busybox")
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "dev", "proc", "sys", "lib", "lib/modules"} {
		rd.dir(d)
	}
	rd.file("bin/busybox", bb, 0o755)
	rd.file("init", []byte(installerInit), 0o755)
	var names []string
	for _, rel := range order {
		ko := filepath.Join(work, filepath.Base(rel))
		debugfs(fmt.Sprintf("dump %s/%s %s", moddir, rel, ko))
		b, err := os.ReadFile(ko)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(rel)
		if n, ok := strings.CutSuffix(name, ".xz"); ok { // Debian 13 ships modules xz-compressed; busybox insmod loads plain ones
			if b, err = exec.Command("xz", "-dc", ko).Output(); err != nil {
				t.Fatalf("xz -dc %s: %v", ko, err)
			}
			name = n
		}
		rd.file("lib/modules/"+name, b, 0o644)
		names = append(names, name)
	}
	rd.file("modules.order", []byte(strings.Join(names, "\n")+"\n"), 0o644)
	initrd := rd.bytes()

	kb, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	for path, b := range map[string][]byte{
		"boot/vmlinuz": kb, "boot/initrd": initrd, "casper/vmlinuz": kb, "casper/initrd": initrd,
		"boot/grub/grub.cfg": []byte(installerGrubCfg),
	} {
		if err := os.WriteFile(filepath.Join(stage, path), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	initrdFile := filepath.Join(work, "initrd")
	os.WriteFile(initrdFile, initrd, 0o644)
	buildMiniDisk(t, work, kernel, initrdFile, filepath.Join(stage, "mini.raw"))
	iso := filepath.Join(work, "installer.iso")
	run(t, "grub-mkrescue", "-o", iso, stage, "-iso-level", "3") // mkisofs options after the source
	t.Logf("MEASURE installer ISO (kernel %s, %d modules, initrd %d KiB, root filesystem %d MiB) built in %s",
		kver, len(order), len(initrd)>>10, blocks*bsize>>20, time.Since(t0))
	return iso
}

// moduleOrder resolves mods and their dependencies from modules.dep into load order;
// those built into the kernel (modules.builtin: virtio_pci in Debian 13) need no loading.
func moduleOrder(t *testing.T, depFile, builtinFile string, mods []string) []string {
	t.Helper()
	b, err := os.ReadFile(depFile)
	if err != nil {
		t.Fatal(err)
	}
	builtin := map[string]bool{}
	if bb, err := os.ReadFile(builtinFile); err == nil {
		for _, p := range strings.Fields(string(bb)) {
			builtin[strings.TrimSuffix(filepath.Base(p), ".ko")] = true
		}
	}
	deps := map[string][]string{} // module path → dependency paths
	byName := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		path, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[path] = strings.Fields(rest)
		name := strings.TrimSuffix(filepath.Base(path), ".xz")
		byName[strings.TrimSuffix(name, ".ko")] = path
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, d := range deps[p] {
			visit(d)
		}
		order = append(order, p)
	}
	for _, m := range mods {
		p, ok := byName[m]
		if !ok && builtin[m] {
			continue
		}
		if !ok {
			t.Fatalf("module %s is neither in %s nor built in", m, depFile)
		}
		visit(p)
	}
	return order
}

// cpio writes a newc archive, the format of a Linux initramfs.
type cpio struct {
	buf bytes.Buffer
	ino int
}

func newCPIO() *cpio { return &cpio{} }

func (c *cpio) entry(name string, mode uint32, data []byte) {
	c.ino++
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.buf.WriteString(name + "\x00")
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *cpio) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

func (c *cpio) dir(name string)                            { c.entry(name, 0o040755, nil) }
func (c *cpio) file(name string, data []byte, perm uint32) { c.entry(name, 0o100000|perm, data) }
func (c *cpio) bytes() []byte                              { c.entry("TRAILER!!!", 0, nil); return c.buf.Bytes() }

func serialLog(name string) string {
	b, _ := os.ReadFile(filepath.Join(layout.InstanceDir(name), store.SerialLog))
	return string(b)
}

// checkInstalledSystem logs into the installed system (`fvm ssh` waits until SSH answers
// with the pinned host key) and checks it runs from the VM's disk.
func checkInstalledSystem(t *testing.T, name string) {
	t.Helper()
	if got := strings.TrimSpace(mustFVM(t, "ssh", name, "--", "cat", "/etc/hostname")); got != name {
		t.Fatalf("hostname %q, want %q", got, name)
	}
	if src := strings.TrimSpace(mustFVM(t, "ssh", name, "--", "findmnt", "-no", "SOURCE", "/")); !strings.HasPrefix(src, "/dev/vda") {
		t.Errorf("root filesystem on %q, want the installed disk /dev/vda", src)
	}
	mustFVM(t, "exec", name, "sudo", "-n", "true")
}

// TestISOInstallerMedia checks the test installer ISO without booting it: fvm sees an
// ISO by content and finds the installer kernel where Ubuntu's ISOs keep it.
func TestISOInstallerMedia(t *testing.T) {
	needTools(t)
	iso := buildInstallerISO(t)
	f, err := os.Open(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if format, err := image.DetectFormat(f); err != nil || format != image.FormatISO {
		t.Fatalf("format %q %v, want iso", format, err)
	}
	if err := qemu.CheckAutoInstallISO(iso); err != nil {
		t.Fatal(err)
	}
}

func TestISO(t *testing.T) {
	t.Parallel() // beside TestPull
	needTools(t)
	iso := buildInstallerISO(t)

	t.Run("interactive", func(t *testing.T) {
		const name = "isoplain"
		t0 := time.Now()
		out := fvm(t, "create", name, "--iso", iso, "--disk", "4G", "--memory", "1G", "--cpus", installerCPUs)
		if out.code != 0 || strings.TrimSpace(out.stdout) != name || !strings.Contains(out.stderr, "fvm display "+name) || strings.Contains(out.stderr, qemu.VNCSocket) {
			t.Fatalf("create: %+v", out)
		}
		if ps := mustFVM(t, "ps", "-a"); !strings.Contains(ps, "iso:installer.iso") {
			t.Errorf("ps does not show the ISO:\n%s", ps)
		}
		r := fvm(t, "start", name)
		if r.code != 0 || !strings.Contains(r.stderr, "`fvm display "+name+"` shows its screen") {
			t.Fatalf("start: %+v", r)
		}
		if st, err := os.Stat(filepath.Join(layout.InstanceDir(name), qemu.VNCSocket)); err != nil || st.Mode()&os.ModeSocket == 0 {
			t.Errorf("no VNC socket for the display: %v", err)
		}
		// The installer writes the disk and reboots; the firmware then boots the disk
		// although the ISO is still attached, and the disk's system powers the VM off.
		waitStopped(t, name, 10*time.Minute)
		t.Logf("MEASURE interactive ISO: create to the installed disk's boot: %s", time.Since(t0))
		log := serialLog(name)
		logInstallerLines(t, log)
		if n := strings.Count(log, installerBanner); n != 1 || !strings.Contains(log, installedMark) {
			t.Fatalf("installer ran %d times (want once, then the disk boots); serial log:\n%s", n, tail(log))
		}
		if n := strings.Count(log, diskBootMark); n != 1 || strings.Index(log, diskBootMark) < strings.Index(log, installedMark) {
			t.Fatalf("the installed disk booted %d times (want once, after the install); serial log:\n%s", n, tail(log))
		}
		if strings.Contains(log, autoSeedMark) {
			t.Error("an interactive install saw an autoinstall kernel command line")
		}
		mustFVM(t, "rm", "-f", name)
	})

	t.Run("auto-install", func(t *testing.T) {
		fullOnly(t, "an unattended install and a boot of the installed system, about 2.5 minutes")
		const name = "isoauto"
		t0 := time.Now()
		mustFVM(t, "create", name, "--iso", iso, "--auto-install", "--disk", "4G", "--memory", "1G")
		// start waits through the install, the power-off and the host's boot from disk.
		r := fvm(t, "start", name)
		if r.code != 0 || !strings.Contains(r.stderr, "installed, SSH ready") {
			t.Fatalf("start: %+v\nserial log:\n%s", r, tail(serialLog(name)))
		}
		t.Logf("MEASURE auto-install: create to SSH on the installed system: %s", time.Since(t0))
		logInstallerLines(t, serialLog(name))
		checkInstalledSystem(t, name)
		log := serialLog(name)
		for _, mark := range []string{autoSeedMark, installedMark} {
			if !strings.Contains(log, mark) {
				t.Errorf("serial log lacks %q:\n%s", mark, tail(log))
			}
		}
		if n := strings.Count(log, installerBanner); n != 1 {
			t.Errorf("installer ran %d times, want once", n)
		}
		dir := layout.InstanceDir(name)
		for _, f := range []string{qemu.InstallerKernel, qemu.InstallerInitrd} {
			if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
				t.Errorf("%s left after the install: %v", f, err)
			}
		}
		// That later boots go straight to the disk with the ISO attached is shown by
		// "interactive" above; one more TCG boot here buys nothing.
		mustFVM(t, "rm", "-f", name)
	})

	t.Run("bad-iso", func(t *testing.T) {
		dir := t.TempDir()
		notISO := filepath.Join(dir, "disk.iso")
		os.WriteFile(notISO, []byte("not an iso at all"), 0o644)
		os.MkdirAll(filepath.Join(dir, "src"), 0o755)
		os.WriteFile(filepath.Join(dir, "src", "README"), []byte("no installer here"), 0o644)
		plain := filepath.Join(dir, "plain.iso")
		run(t, "xorriso", "-as", "mkisofs", "-R", "-o", plain, filepath.Join(dir, "src"))
		for _, args := range [][]string{
			{"create", "bad1", "--iso", notISO},
			{"create", "bad2", "--iso", "/no/such.iso"},
			{"create", "bad3", "--iso", plain, "--auto-install"}, // no casper/vmlinuz: not Ubuntu's
			{"create", "bad4", "debian-local", "--iso", plain},
		} {
			r := fvm(t, args...)
			msg := strings.TrimSpace(r.stderr)
			if r.code == 0 || strings.Count(msg, "\n") > 0 || !strings.HasPrefix(msg, "fvm: ") {
				t.Errorf("fvm %v: want one-line error, got %d %q", args, r.code, msg)
			}
		}
		for _, n := range []string{"bad1", "bad2", "bad3", "bad4"} {
			if _, err := os.Stat(layout.InstanceDir(n)); !os.IsNotExist(err) {
				t.Errorf("%s left a VM dir", n)
			}
		}
	})
}

// waitStopped waits until the VM's state is stopped (its guest powered off).
func waitStopped(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var v api.VM
		out, err := exec.Command(fvmBin, "inspect", name).Output()
		if err == nil && json.Unmarshal(out, &v) == nil && v.State == "stopped" {
			return
		}
		// A kernel that panicked without panic=N (the test installer's) halts for
		// good: say so now rather than after the whole timeout.
		if log := serialLog(name); strings.Contains(log, "---[ end Kernel panic") {
			t.Fatalf("vm %s: its kernel panicked and halted; serial log:\n%s", name, tail(log))
		}
		if time.Now().After(deadline) {
			t.Fatalf("vm %s not stopped after %s (inspect: %v %s); serial log:\n%s", name, timeout, err, out, tail(serialLog(name)))
		}
		time.Sleep(2 * time.Second)
	}
}

// logInstallerLines logs the installer's own lines (with the guest's uptime) as measurements.
func logInstallerLines(t *testing.T, log string) {
	for _, line := range strings.Split(log, "\n") {
		if i := strings.Index(line, "FVM-TEST-INSTALLER:"); i >= 0 {
			t.Logf("MEASURE guest: %s", strings.TrimSpace(line[i:]))
		}
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
