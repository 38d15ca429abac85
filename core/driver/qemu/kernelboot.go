package qemu

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/diskfs/go-diskfs/partition/gpt"
	qcow2reader "github.com/lima-vm/go-qcow2reader"
	qimage "github.com/lima-vm/go-qcow2reader/image"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Direct kernel boot of fvm's own images. Under emulation the UEFI firmware
// and GRUB cost seconds of every cold boot; an image that carries
// KernelCmdlineFile (fvm's lean Debian image) is booted instead by QEMU
// itself: its kernel and initrd (what /vmlinuz and /initrd.img on its root
// filesystem point to) are read from the VM's own disk at each cold boot, so
// a kernel upgraded inside the guest is the one that boots next, as with
// GRUB. Everything else (catalog images, ISO installs, arm64 guests) boots
// through UEFI as before; so does fvm's image on another backend, which it
// still can (it keeps its EFI system partition and GRUB).

// KernelCmdlineFile is where an image asks, on its root filesystem, to have
// its kernel booted directly with that command line.
const KernelCmdlineFile = "/etc/fvm/kernel-cmdline"

// Files of a direct kernel boot in the instance directory, read from its disk.
const (
	BootKernel = "boot-vmlinuz"
	BootInitrd = "boot-initrd.img"
)

// guestBoot is what a disk asks to be booted with.
type guestBoot struct {
	Cmdline string // "" when the disk does not ask for a direct kernel boot
}

// kernelBootArch says whether fvm boots kernels directly on arch: x86-64,
// where QEMU's own BIOS and its linuxboot option ROM load them. arm64 keeps
// UEFI (and so its ACPI tables), as every arm64 cloud image expects.
func kernelBootArch(a vm.Arch) bool { return a == vm.AMD64 }

var bootCache sync.Map // disk path + size + mtime → guestBoot

// readGuestBoot reads, without extracting anything, whether the disk image
// at path (qcow2 with its backing chain, or raw) asks for a direct kernel
// boot, cached per file version: WarmFingerprint asks it of a base often.
func readGuestBoot(path string) (guestBoot, error) {
	st, err := os.Stat(path)
	if err != nil {
		return guestBoot{}, err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano())
	if v, ok := bootCache.Load(key); ok {
		return v.(guestBoot), nil
	}
	var gb guestBoot
	err = withGuestRoot(path, func(root *ext4.FileSystem) error {
		c, err := readCmdline(root)
		gb.Cmdline = c
		return err
	})
	if err != nil {
		return guestBoot{}, err
	}
	bootCache.Store(key, gb)
	return gb, nil
}

// extractGuestBoot copies the kernel and initrd that the root filesystem of
// the disk at path boots (/vmlinuz, /initrd.img) to kernel and initrd,
// atomically, and returns the command line it asks for.
func extractGuestBoot(path, kernel, initrd string) (string, error) {
	var cmdline string
	err := withGuestRoot(path, func(root *ext4.FileSystem) error {
		var err error
		if cmdline, err = readCmdline(root); err != nil {
			return err
		}
		if cmdline == "" {
			return fmt.Errorf("it has no %s", KernelCmdlineFile)
		}
		for _, f := range []struct{ src, dst string }{{"/vmlinuz", kernel}, {"/initrd.img", initrd}} {
			if err := copyOut(root, f.src, f.dst); err != nil {
				return fmt.Errorf("%s: %w", f.src, err)
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("the kernel to boot from disk %s: %w", path, err)
	}
	return cmdline, nil
}

// readCmdline reads KernelCmdlineFile; "" when the filesystem has none.
func readCmdline(root *ext4.FileSystem) (string, error) {
	f, err := root.OpenFile(KernelCmdlineFile, os.O_RDONLY)
	if err != nil {
		return "", nil // go-diskfs says "does not exist" only in words: none, as far as fvm is concerned
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("%s: %w", KernelCmdlineFile, err)
	}
	return strings.Join(strings.Fields(string(b)), " "), nil
}

func copyOut(root *ext4.FileSystem, src, dst string) error {
	r, err := root.OpenFile(src, os.O_RDONLY)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	w, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, r)
	if err = errors.Join(err, w.Close()); err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// withGuestRoot opens the disk image at path (its backing chain too: fvm's
// own files) and calls fn with the first ext4 filesystem on a Linux
// partition of its GPT that holds KernelCmdlineFile, or else the first one;
// a disk without any is no error: fn is not called.
func withGuestRoot(path string, fn func(*ext4.FileSystem) error) error {
	f, _, err := store.OpenRegular(path) // a FIFO or a link planted there never blocks or redirects a start
	if err != nil {
		return err
	}
	defer f.Close()
	img, err := qcow2reader.Open(f) // *os.File names itself: backing files resolve beside it
	if err != nil {
		return fmt.Errorf("read disk %s: %w", path, err)
	}
	defer img.Close()
	if err := img.Readable(); err != nil {
		return fmt.Errorf("read disk %s: %w", path, err)
	}
	disk := &diskReader{img: img, size: img.Size()}
	table, err := gpt.Read(disk, 512, 512)
	if err != nil {
		return nil // no GPT: not an image fvm boots directly
	}
	var first *ext4.FileSystem
	for _, p := range table.Partitions {
		if p.Type != gpt.LinuxFilesystem {
			continue
		}
		// The partition as a disk of its own: go-diskfs (v1.7.0) reads file
		// data at filesystem offsets without the partition's start.
		part := &diskReader{img: img, base: p.GetStart(), size: p.GetSize()}
		root, err := ext4.Read(part, p.GetSize(), 0, 512)
		if err != nil {
			continue // another filesystem
		}
		if first == nil {
			first = root
		}
		if _, err := root.OpenFile(KernelCmdlineFile, os.O_RDONLY); err == nil {
			return fn(root)
		}
	}
	if first == nil {
		return nil
	}
	return fn(first)
}

// diskReader is a read-only go-diskfs backend over a guest's disk image, or
// the part of it from base on, size bytes long.
type diskReader struct {
	img        qimage.Image
	base, size int64
	off        int64
}

var _ backend.Storage = (*diskReader)(nil)

func (d *diskReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	if rest := d.size - off; int64(len(p)) > rest {
		n, err := d.img.ReadAt(p[:rest], d.base+off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return d.img.ReadAt(p, d.base+off)
}

func (d *diskReader) Read(p []byte) (int, error) {
	n, err := d.ReadAt(p, d.off)
	d.off += int64(n)
	return n, err
}
func (d *diskReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += d.off
	case io.SeekEnd:
		off += d.size
	}
	if off < 0 {
		return 0, errors.New("seek before the start")
	}
	d.off = off
	return off, nil
}
func (d *diskReader) Close() error               { return nil }
func (d *diskReader) Stat() (fs.FileInfo, error) { return diskInfo{d.size}, nil }
func (d *diskReader) Sys() (*os.File, error)     { return nil, backend.ErrNotSuitable }
func (d *diskReader) Writable() (backend.WritableFile, error) {
	return nil, backend.ErrIncorrectOpenMode
}

type diskInfo struct{ size int64 }

func (i diskInfo) Name() string       { return "disk" }
func (i diskInfo) Size() int64        { return i.size }
func (i diskInfo) Mode() fs.FileMode  { return 0o444 }
func (i diskInfo) ModTime() time.Time { return time.Time{} }
func (i diskInfo) IsDir() bool        { return false }
func (i diskInfo) Sys() any           { return nil }

// kernelBootFiles are where the direct kernel boot files of the instance in dir are.
func kernelBootFiles(dir string) (kernel, initrd string) {
	i := &store.Instance{Dir: dir}
	return i.Path(BootKernel), i.Path(BootInitrd)
}

// kernelFiles puts in place the files of a direct kernel boot. A cold boot
// reads them from the VM's disk as it is now. A restore needs them only for
// QEMU's command line to be the one that saved the state (the kernel that
// runs is in the restored memory): a clone's first start uses its snapshot's
// (read from the disk the clone's is an overlay on, when the template
// booted), a resume the VM's own from its last cold boot.
func kernelFiles(cfg *Config, p paths, clone string, restore bool) error {
	if restore && clone != "" {
		k, i := kernelBootFiles(clone)
		if isFile(k) && isFile(i) {
			cfg.Kernel, cfg.Initrd = k, i
			return nil
		}
	}
	if restore && isFile(cfg.Kernel) && isFile(cfg.Initrd) {
		return nil
	}
	cmdline, err := extractGuestBoot(p.disk, cfg.Kernel, cfg.Initrd)
	if err != nil {
		return err
	}
	cfg.Append, cfg.GuestCmdline = cmdline, true
	return nil
}

// rebootOnPanic has a directly booted guest's kernel reboot 5 s after a
// panic or an oops rather than hang: QEMU restarts it in the same process
// and the host's wait for SSH goes on. Under multi-threaded TCG (QEMU 7.2
// here) about one cold boot in fifteen died of "Oops: int3" while the kernel
// patched its own code on one CPU as another ran it. In the idle task that
// is a panic; in a process (kmem_cache_free, seen here) it is an oops the
// kernel lives on from, half broken: such a boot hung until the client's
// wait gave up (10 minutes). oops=panic makes the second the first (what
// RHEL's kernels do by default). Both stay in the serial log. A cmdline that
// sets panic= itself is kept as it says (panic=0 with oops=panic would turn
// an oops into a hang for good); one that sets oops= keeps that.
func rebootOnPanic(cmdline string) string {
	hasOops := false
	for _, f := range strings.Fields(cmdline) {
		if strings.HasPrefix(f, "panic=") {
			return cmdline
		}
		hasOops = hasOops || strings.HasPrefix(f, "oops=")
	}
	cmdline += " panic=5"
	if !hasOops {
		cmdline += " oops=panic"
	}
	return strings.TrimSpace(cmdline)
}
