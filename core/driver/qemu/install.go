package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/lima-vm/go-qcow2reader"
	"github.com/lima-vm/go-qcow2reader/image/qcow2"
	"golang.org/x/sys/unix"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// A VM installed from an ISO (vm.Spec.ISO) starts with an empty disk and keeps the
// ISO attached as a CD-ROM behind the disk in the boot order (bootindex 0 and 1):
// the firmware boots the disk once an installer made it bootable, the ISO until then.
//
// An unattended install (vm.Spec.AutoInstall) cannot rely on the ISO's own boot menu:
// Ubuntu's installer asks for confirmation unless "autoinstall" is on the kernel
// command line. So while the disk is still blank, Start boots the kernel and initrd of
// the ISO's live system (casper/) directly with cloudinit.AutoinstallCmdline, and with
// -no-reboot, because QEMU keeps a -kernel across a guest reboot and would install
// again. Once the disk has a partition table, boots go through the firmware to the disk.

// Where Ubuntu's live server ISOs (casper) keep the installer's kernel and initrd,
// on amd64 and arm64 alike.
const (
	isoKernelPath = "/casper/vmlinuz"
	isoInitrdPath = "/casper/initrd"
)

// createEmptyDisk makes a blank qcow2 of size bytes for an installer to fill.
func (d *Driver) createEmptyDisk(ctx context.Context, disk string, size int64) error {
	if size <= 0 {
		return errors.New("no disk size given: use --disk (e.g. 20G)")
	}
	return d.qemuImgCreate(ctx, disk, size)
}

// diskInstalled reports whether the qcow2 disk holds a partition table (the boot
// signature of an MBR or of GPT's protective MBR), which every installer writes.
func diskInstalled(disk string) (bool, error) {
	f, _, err := store.OpenRegular(disk)
	if err != nil {
		return false, err
	}
	defer f.Close()
	// Only called for disks fvm made without a backing file, so nothing else is opened.
	img, err := qcow2reader.OpenWithType(f, qcow2.Type)
	if err != nil {
		return false, fmt.Errorf("read disk %s: %w", disk, err)
	}
	defer img.Close()
	mbr := make([]byte, 512)
	if _, err := img.ReadAt(mbr, 0); err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read disk %s: %w", disk, err)
	}
	return mbr[510] == 0x55 && mbr[511] == 0xaa, nil
}

// CheckAutoInstallISO checks that iso has the installer kernel and initrd an
// unattended install boots (an Ubuntu server ISO).
func CheckAutoInstallISO(iso string) error {
	return withISO(iso, func(fs *iso9660.FileSystem) error {
		for _, p := range []string{isoKernelPath, isoInitrdPath} {
			if _, err := fs.OpenFile(p, os.O_RDONLY); err != nil {
				return fmt.Errorf("--auto-install needs an Ubuntu server ISO, and %s has no %s", iso, p)
			}
		}
		return nil
	})
}

func withISO(iso string, fn func(*iso9660.FileSystem) error) error {
	// The user's ISO, referenced in place: a symlink to it is fine, a FIFO
	// swapped in must not block the host.
	f, err := os.OpenFile(iso, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("installer ISO: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("installer ISO: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("installer ISO %q is not a regular file", iso)
	}
	fs, err := iso9660.Read(file.New(f, true), st.Size(), 0, 2048)
	if err != nil {
		return fmt.Errorf("installer ISO %s: %w", iso, err)
	}
	return fn(fs)
}

// extractFromISO copies the ISO's file at src to dst (atomically).
func extractFromISO(fs *iso9660.FileSystem, src, dst string) error {
	r, err := fs.OpenFile(src, os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	tmp := dst + ".tmp"
	w, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, r)
	if err = errors.Join(err, w.Close()); err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy %s out of the ISO: %w", src, err)
	}
	return nil
}

// addInstallMedia attaches what an ISO VM boots from besides its disk: the ISO as a
// CD-ROM (the display every VM has shows the installer), plus the installer's kernel while an unattended install is
// still to be done. It fails when the disk is blank and the ISO is gone.
func addInstallMedia(cfg *Config, spec *vm.Spec, p paths) error {
	installed, err := diskInstalled(p.disk)
	if err != nil {
		return err
	}
	if !isFile(spec.ISO) {
		if installed { // the installed system needs its ISO no more
			return nil
		}
		return fmt.Errorf("installer ISO %s is missing and the disk is still blank: put the ISO back, or remove the VM with `fvm rm %s`", spec.ISO, spec.Name)
	}
	cfg.CDROM = spec.ISO
	if installed || !spec.AutoInstall {
		os.Remove(p.kernel)
		os.Remove(p.initrd)
		return nil
	}
	err = withISO(spec.ISO, func(fs *iso9660.FileSystem) error {
		return errors.Join(extractFromISO(fs, isoKernelPath, p.kernel), extractFromISO(fs, isoInitrdPath, p.initrd))
	})
	if err != nil {
		return fmt.Errorf("unattended install: %w", err)
	}
	cfg.Kernel, cfg.Initrd, cfg.Append, cfg.NoReboot = p.kernel, p.initrd, cloudinit.AutoinstallCmdline, true
	return nil
}

// InstallFinished reports whether this run was an unattended install boot that left an
// installed disk: the host then boots the VM again, from its disk.
func (m *Machine) InstallFinished() bool {
	if !m.install {
		return false
	}
	ok, err := diskInstalled(m.topPath())
	return err == nil && ok
}
