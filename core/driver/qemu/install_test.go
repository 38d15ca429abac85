package qemu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// hasArg reports whether flag is followed by value in args.
func hasArg(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

func TestBuildArgsISOInstall(t *testing.T) {
	cfg := baseConfig()
	cfg.CDROM = "/isos/ubuntu,24.04.iso"
	args := BuildArgs(cfg)
	for _, want := range [][2]string{
		{"-device", "virtio-blk-pci,drive=disk0,bootindex=0"},
		{"-drive", "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=/isos/ubuntu,,24.04.iso"},
		{"-device", "ide-cd,drive=cd0,bootindex=1"},
		{"-device", "virtio-vga"},
		{"-device", "qemu-xhci,id=usb"},
		{"-device", "usb-tablet,bus=usb.0"},
		{"-vnc", "unix:/d/vnc.sock"},
		{"-display", "none"},
	} {
		if !hasArg(args, want[0], want[1]) {
			t.Errorf("missing %s %s in %q", want[0], want[1], args)
		}
	}
	if slices.Contains(args, "-kernel") || slices.Contains(args, "-no-reboot") {
		t.Errorf("an interactive ISO boot goes through the firmware: %q", args)
	}
	// The disk's device comes before the CD-ROM's (bootindex decides, but keep it readable).
	if slices.Index(args, "virtio-blk-pci,drive=disk0,bootindex=0") > slices.Index(args, "ide-cd,drive=cd0,bootindex=1") {
		t.Error("disk device after the CD-ROM")
	}

	cfg.Arch = vm.ARM64
	args = BuildArgs(cfg)
	for _, want := range [][2]string{
		{"-device", "virtio-scsi-pci,id=scsi0"},
		{"-device", "scsi-cd,bus=scsi0.0,drive=cd0,bootindex=1"},
		{"-device", "virtio-gpu-pci"},
	} {
		if !hasArg(args, want[0], want[1]) {
			t.Errorf("arm64: missing %s %s in %q", want[0], want[1], args)
		}
	}

	cfg.Arch = vm.AMD64
	cfg.Kernel, cfg.Initrd, cfg.Append, cfg.NoReboot = "/d/k", "/d/i", cloudinit.AutoinstallCmdline, true
	args = BuildArgs(cfg)
	if !hasArg(args, "-kernel", "/d/k") || !hasArg(args, "-initrd", "/d/i") || !hasArg(args, "-append", cloudinit.AutoinstallCmdline) || !slices.Contains(args, "-no-reboot") {
		t.Errorf("unattended install boot: %q", args)
	}
	// QEMU gives bootindex 0 to the -kernel option ROM on x86: the disk and CD-ROM follow it.
	if !hasArg(args, "-device", "virtio-blk-pci,drive=disk0,bootindex=1") || !hasArg(args, "-device", "ide-cd,drive=cd0,bootindex=2") {
		t.Errorf("boot order with -kernel: %q", args)
	}
}

// writeTestISO writes an ISO 9660 image holding files (path → content).
func writeTestISO(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs, err := iso9660.Create(file.New(f, false), 0, 0, 2048, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if dir := filepath.Dir(name); dir != "/" {
			if err := fs.Mkdir(dir); err != nil {
				t.Fatal(err)
			}
		}
		w, err := fs.OpenFile(name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{RockRidge: true, VolumeIdentifier: "TESTISO"}); err != nil {
		t.Fatal(err)
	}
}

func isoInstance(t *testing.T, iso string, auto bool) (*Driver, *store.Instance) {
	t.Helper()
	needQEMUImg(t)
	inst := newInstance(t, "", 2<<30)
	inst.Spec.Image, inst.Spec.ISO, inst.Spec.AutoInstall = "", iso, auto
	d := testDriver(t)
	if err := d.Create(context.Background(), inst, driver.CreateInput{}); err != nil {
		t.Fatal(err)
	}
	return d, inst
}

func TestCreateEmptyDiskForISO(t *testing.T) {
	iso := filepath.Join(t.TempDir(), "installer.iso")
	writeTestISO(t, iso, map[string]string{"/README": "x"})
	_, inst := isoInstance(t, iso, false)
	i := info(t, inst.Path(DiskFile))
	if i.Format != "qcow2" || i.VirtualSize != 2<<30 || i.BackingFile != "" {
		t.Fatalf("disk: %+v, want a blank 2G qcow2 without backing file", i)
	}
	if ok, err := diskInstalled(inst.Path(DiskFile)); err != nil || ok {
		t.Fatalf("blank disk reported installed: %v %v", ok, err)
	}
	if !isFile(inst.Path(store.EFIVarsFile)) {
		t.Error("no UEFI variable store")
	}
}

// install writes a protective MBR's boot signature into the qcow2, as an installer would.
func install(t *testing.T, disk string) {
	t.Helper()
	out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x55 510 1", "-c", "write -P 0xaa 511 1", disk).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
}

func TestAddInstallMedia(t *testing.T) {
	dir := t.TempDir()
	ubuntu := filepath.Join(dir, "ubuntu.iso")
	writeTestISO(t, ubuntu, map[string]string{isoKernelPath: "KERNEL", isoInitrdPath: "INITRD"})
	other := filepath.Join(dir, "other.iso")
	writeTestISO(t, other, map[string]string{"/README": "x"})

	if err := CheckAutoInstallISO(ubuntu); err != nil {
		t.Fatalf("ubuntu-like ISO refused: %v", err)
	}
	if err := CheckAutoInstallISO(other); err == nil || !strings.Contains(err.Error(), "Ubuntu server ISO") {
		t.Fatalf("ISO without casper accepted: %v", err)
	}

	t.Run("interactive", func(t *testing.T) {
		_, inst := isoInstance(t, other, false)
		var cfg Config
		if err := addInstallMedia(&cfg, &inst.Spec, pathsOf(inst)); err != nil {
			t.Fatal(err)
		}
		if cfg.CDROM != other || cfg.Kernel != "" || cfg.NoReboot {
			t.Fatalf("cfg %+v", cfg)
		}
	})

	t.Run("auto", func(t *testing.T) {
		_, inst := isoInstance(t, ubuntu, true)
		p := pathsOf(inst)
		var cfg Config
		if err := addInstallMedia(&cfg, &inst.Spec, p); err != nil {
			t.Fatal(err)
		}
		if cfg.Kernel != p.kernel || cfg.Initrd != p.initrd || cfg.Append != cloudinit.AutoinstallCmdline || !cfg.NoReboot || cfg.CDROM != ubuntu {
			t.Fatalf("blank disk: cfg %+v, want the install boot", cfg)
		}
		if b, _ := os.ReadFile(p.kernel); string(b) != "KERNEL" {
			t.Errorf("kernel copied out of the ISO: %q", b)
		}
		if b, _ := os.ReadFile(p.initrd); string(b) != "INITRD" {
			t.Errorf("initrd copied out of the ISO: %q", b)
		}
		m := &Machine{install: true, p: p}
		if m.InstallFinished() {
			t.Error("install reported finished on a blank disk")
		}

		install(t, p.disk)
		if !m.InstallFinished() {
			t.Error("install not reported finished on an installed disk")
		}
		cfg = Config{}
		if err := addInstallMedia(&cfg, &inst.Spec, p); err != nil {
			t.Fatal(err)
		}
		if cfg.Kernel != "" || cfg.NoReboot || cfg.CDROM != ubuntu {
			t.Fatalf("installed disk: cfg %+v, want a firmware boot with the ISO still attached", cfg)
		}
		if isFile(p.kernel) || isFile(p.initrd) {
			t.Error("installer kernel left behind after the install")
		}

		// The ISO may go once the system is installed, not before.
		os.Rename(ubuntu, ubuntu+".moved")
		defer os.Rename(ubuntu+".moved", ubuntu)
		cfg = Config{}
		if err := addInstallMedia(&cfg, &inst.Spec, p); err != nil || cfg.CDROM != "" {
			t.Fatalf("installed disk without its ISO: %v %+v", err, cfg)
		}
	})

	t.Run("iso-gone-before-install", func(t *testing.T) {
		gone := filepath.Join(t.TempDir(), "gone.iso")
		writeTestISO(t, gone, map[string]string{"/README": "x"})
		_, inst := isoInstance(t, gone, false)
		os.Remove(gone)
		err := addInstallMedia(&Config{}, &inst.Spec, pathsOf(inst))
		if err == nil || !strings.Contains(err.Error(), "is missing") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDiskInstalledErrors(t *testing.T) {
	if _, err := diskInstalled(filepath.Join(t.TempDir(), "none.qcow2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing disk: %v", err)
	}
}
