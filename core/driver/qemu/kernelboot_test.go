package qemu

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/filesystem/ext4"
)

// guestDisk makes a qcow2 disk laid out like fvm's image: a GPT with an EFI
// partition first and an ext4 root last whose /vmlinuz and /initrd.img link
// into /boot, with KernelCmdlineFile when cmdline is not "". It needs the
// tools the image build needs (skips without them).
func guestDisk(t *testing.T, cmdline string) (disk string, kernel, initrd []byte) {
	t.Helper()
	tools := map[string]string{}
	for _, n := range []string{"mkfs.ext4", "sfdisk", "qemu-img"} {
		p, err := exec.LookPath(n)
		if err != nil {
			if p, err = exec.LookPath("/usr/sbin/" + n); err != nil {
				t.Skipf("no %s", n)
			}
		}
		tools[n] = p
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	kernel = bytes.Repeat([]byte("kernel-6.12 "), 100000) // 1.2 MB: several extents' worth of blocks
	initrd = []byte("initrd-6.12\n")
	for p, b := range map[string][]byte{"boot/vmlinuz-6.12": kernel, "boot/initrd.img-6.12": initrd, "boot/vmlinuz-6.1": []byte("old")} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), b, 0o644)
	}
	os.Symlink("boot/vmlinuz-6.12", filepath.Join(root, "vmlinuz"))
	os.Symlink("boot/initrd.img-6.12", filepath.Join(root, "initrd.img"))
	if cmdline != "" {
		os.MkdirAll(filepath.Join(root, "etc/fvm"), 0o755)
		os.WriteFile(filepath.Join(root, KernelCmdlineFile), []byte(cmdline+"\n"), 0o644)
	}
	run := func(stdin string, name string, args ...string) {
		t.Helper()
		c := exec.Command(tools[name], args...)
		c.Stdin = strings.NewReader(stdin)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", name, err, out)
		}
	}
	rootImg, raw := filepath.Join(dir, "root.img"), filepath.Join(dir, "disk.raw")
	os.WriteFile(rootImg, nil, 0o644)
	os.Truncate(rootImg, 32<<20)
	run("", "mkfs.ext4", "-q", "-F", "-d", root, rootImg)
	os.WriteFile(raw, nil, 0o644)
	os.Truncate(raw, 42<<20)
	run("label: gpt\nstart=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=10240, size=65536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n",
		"sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", raw)
	b, _ := os.ReadFile(rootImg)
	f, _ := os.OpenFile(raw, os.O_WRONLY, 0)
	f.WriteAt(b, 10240*512)
	f.Close()
	base := filepath.Join(dir, "base.qcow2")
	run("", "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, base)
	disk = filepath.Join(dir, "disk.qcow2") // a VM's overlay on it
	run("", "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, disk)
	return disk, kernel, initrd
}

func TestKernelBootFromDisk(t *testing.T) {
	disk, kernel, initrd := guestDisk(t, "root=UUID=1234 ro  console=ttyS0,115200")
	gb, err := readGuestBoot(disk)
	if err != nil || gb.Cmdline != "root=UUID=1234 ro console=ttyS0,115200" {
		t.Fatalf("readGuestBoot: %+v, %v", gb, err)
	}
	dir := t.TempDir()
	k, i := kernelBootFiles(dir)
	cmdline, err := extractGuestBoot(disk, k, i)
	if err != nil || cmdline != gb.Cmdline {
		t.Fatalf("extract: %q, %v", cmdline, err)
	}
	if got, _ := os.ReadFile(k); !bytes.Equal(got, kernel) {
		t.Fatalf("kernel: %d bytes, want %d (what /vmlinuz points to)", len(got), len(kernel))
	}
	if got, _ := os.ReadFile(i); !bytes.Equal(got, initrd) {
		t.Fatalf("initrd: %q", got)
	}

	// A restore of a clone uses its snapshot's files; one of a VM its own.
	cfg := Config{KernelBoot: true, Kernel: filepath.Join(t.TempDir(), BootKernel), Initrd: filepath.Join(t.TempDir(), BootInitrd)}
	c := cfg
	if err := kernelFiles(&c, paths{disk: disk}, dir, true); err != nil || c.Kernel != k || c.Initrd != i {
		t.Fatalf("clone: %+v %v", c, err)
	}
	c = cfg
	if err := kernelFiles(&c, paths{disk: disk}, "", false); err != nil || c.Append != gb.Cmdline || !c.GuestCmdline || !isFile(c.Kernel) {
		t.Fatalf("cold boot: %+v %v", c, err)
	}
}

// A disk that does not ask for it (a catalog image) boots through UEFI.
func TestKernelBootNotAsked(t *testing.T) {
	disk, _, _ := guestDisk(t, "")
	if gb, err := readGuestBoot(disk); err != nil || gb.Cmdline != "" {
		t.Fatalf("%+v %v", gb, err)
	}
	raw := filepath.Join(t.TempDir(), "blank.raw")
	os.WriteFile(raw, make([]byte, 1<<20), 0o644)
	if gb, err := readGuestBoot(raw); err != nil || gb.Cmdline != "" {
		t.Fatalf("a blank disk: %+v %v", gb, err)
	}
}

func TestKernelBootArgs(t *testing.T) {
	cfg := Config{Name: "vm1", Arch: "amd64", Accel: AccelTCG, CPUs: 2, MemoryMiB: 1024, Firmware: Firmware{Code: "/fw/OVMF_CODE.fd"}, VarsFile: "/d/vars.fd",
		Disk: "/d/disk.qcow2", KernelBoot: true, Kernel: "/d/" + BootKernel, Initrd: "/d/" + BootInitrd, Append: "root=UUID=1 ro"}
	a := strings.Join(BuildArgs(cfg), " ")
	for _, want := range []string{"-kernel /d/boot-vmlinuz -initrd /d/boot-initrd.img -append root=UUID=1 ro", "virtio-net-pci,netdev=net0,romfile=", "bootindex=1"} {
		if !strings.Contains(a, want) {
			t.Errorf("args lack %q: %s", want, a)
		}
	}
	if strings.Contains(a, "pflash") {
		t.Errorf("a direct kernel boot with UEFI firmware: %s", a)
	}
	cfg.KernelBoot, cfg.Kernel, cfg.Initrd, cfg.Append = false, "", "", ""
	if a := strings.Join(BuildArgs(cfg), " "); !strings.Contains(a, "pflash") || strings.Contains(a, "romfile") {
		t.Errorf("a UEFI boot: %s", a)
	}
}

// A FIFO or a symlink where the VM's disk should be is refused at once:
// a start never blocks on it or reads another file through it.
func TestWithGuestRootRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.qcow2")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	link := filepath.Join(dir, "link.qcow2")
	os.WriteFile(filepath.Join(dir, "real"), []byte("x"), 0o600)
	os.Symlink(filepath.Join(dir, "real"), link)
	for _, p := range []string{fifo, link} {
		done := make(chan error, 1)
		go func() { done <- withGuestRoot(p, func(*ext4.FileSystem) error { return nil }) }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: no error", p)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: withGuestRoot blocked", p)
		}
	}
}

func TestRebootOnPanic(t *testing.T) {
	for in, want := range map[string]string{
		"root=UUID=x ro console=ttyS0,115200": "root=UUID=x ro console=ttyS0,115200 panic=5 oops=panic",
		"root=UUID=x panic=0":                 "root=UUID=x panic=0",
		"root=UUID=x panic=30 oops=panic":     "root=UUID=x panic=30 oops=panic",
		"root=UUID=x oops=panic":              "root=UUID=x oops=panic panic=5",
		"":                                    "panic=5 oops=panic",
	} {
		if got := rebootOnPanic(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// panic=5 reaches QEMU's -append but not the saved state's fingerprint: a VM
// suspended (or a snapshot made) before it existed still resumes.
func TestPanicRebootOutsideTheFingerprint(t *testing.T) {
	cfg := Config{Name: "a", Disk: "/d/disk.qcow2", KernelBoot: true, Kernel: "/d/" + BootKernel, Initrd: "/d/" + BootInitrd, Append: "root=UUID=1 ro"}
	with := cfg
	with.GuestCmdline = true
	if deviceSet(cfg) != deviceSet(with) {
		t.Error("GuestCmdline changes the device set: saved states of older VMs would not fit")
	}
	if args := strings.Join(BuildArgs(with), " "); !strings.Contains(args, "-append root=UUID=1 ro panic=5") {
		t.Errorf("QEMU's args: %s", args)
	}
	if args := strings.Join(BuildArgs(cfg), " "); strings.Contains(args, "panic=") {
		t.Errorf("QEMU's args without GuestCmdline: %s", args)
	}
}
