package qemu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// BaseInfo describes a base disk image.
type BaseInfo struct {
	Format      string // qcow2 or raw
	VirtualSize int64  // bytes the guest sees
}

const qcow2Magic = "QFI\xfb"

// qcow2 header layout (docs/interop/qcow2.txt in QEMU): big-endian fields at fixed offsets.
const (
	qcowOffVersion       = 4
	qcowOffBackingOffset = 8
	qcowOffSize          = 24
	qcowOffCrypt         = 32
	qcowOffIncompatible  = 72 // version 3 only
	qcowHeaderLen        = 104
	qcowExternalDataBit  = 1 << 2
)

// InspectBase detects a base image's format by content and refuses what QEMU must
// never be pointed at: a qcow2 with a backing file or an external data file, which
// would make the VM read an arbitrary host file (Lima CVE-2023-32684), or an
// encrypted one. The header is parsed here rather than with go-qcow2reader because
// that library opens the backing file while parsing, which is what we refuse to do.
func InspectBase(path string) (BaseInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return BaseInfo{}, fmt.Errorf("base image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return BaseInfo{}, fmt.Errorf("base image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return BaseInfo{}, fmt.Errorf("base image %s is not a regular file", path)
	}
	h := make([]byte, qcowHeaderLen)
	n, err := io.ReadFull(f, h)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return BaseInfo{}, fmt.Errorf("base image %s: %w", path, err)
	}
	if n < 4 || string(h[:4]) != qcow2Magic {
		return BaseInfo{Format: "raw", VirtualSize: st.Size()}, nil
	}
	bad := func(why string) (BaseInfo, error) {
		return BaseInfo{}, fmt.Errorf("base image %s is refused: %s: convert it to a standalone image with `qemu-img convert -O qcow2 %s new.qcow2`", path, why, path)
	}
	be := binary.BigEndian
	if n < 72 {
		return bad("truncated qcow2 header")
	}
	version := be.Uint32(h[qcowOffVersion:])
	if version != 2 && version != 3 {
		return bad(fmt.Sprintf("unsupported qcow2 version %d", version))
	}
	if be.Uint64(h[qcowOffBackingOffset:]) != 0 {
		return bad("it has a backing file")
	}
	if be.Uint32(h[qcowOffCrypt:]) != 0 {
		return bad("it is encrypted")
	}
	if version == 3 {
		if n < qcowOffIncompatible+8 {
			return bad("truncated qcow2 header")
		}
		if be.Uint64(h[qcowOffIncompatible:])&qcowExternalDataBit != 0 {
			return bad("it has an external data file")
		}
	}
	size := be.Uint64(h[qcowOffSize:])
	if size == 0 || size > 1<<62 {
		return bad(fmt.Sprintf("implausible virtual size %d", size))
	}
	return BaseInfo{Format: "qcow2", VirtualSize: int64(size)}, nil
}

// createDisk makes the instance's qcow2 overlay on spec.BaseImage. It takes the same
// short time whatever the base's size: only a header pointing at the base is written.
// An existing overlay is kept (Create is idempotent).
func (d *Driver) createDisk(ctx context.Context, inst *store.Instance) error {
	disk := inst.Path(DiskFile)
	if exists(disk) {
		return nil
	}
	spec := &inst.Spec
	if spec.Warm != "" {
		return d.createClone(ctx, inst)
	}
	if spec.BaseImage == "" && spec.ISO != "" {
		return d.createEmptyDisk(ctx, disk, spec.DiskBytes)
	}
	if spec.BaseImage == "" {
		return fmt.Errorf("vm %q has no base image resolved", spec.Name)
	}
	base, err := filepath.Abs(spec.BaseImage) // the overlay records this path
	if err != nil {
		return err
	}
	info, err := InspectBase(base)
	if err != nil {
		return err
	}
	size := spec.DiskBytes
	if size == 0 {
		size = info.VirtualSize
	}
	if size < info.VirtualSize {
		return fmt.Errorf("--disk %s is smaller than the image's %s: use --disk %s or more",
			vm.FormatSize(size), vm.FormatSize(info.VirtualSize), vm.FormatSize(roundUpGiB(info.VirtualSize)))
	}
	return d.qemuImgCreate(ctx, disk, size, "-F", info.Format, "-b", base)
}

// qemuImgCreate makes a qcow2 of size bytes at disk (extra: e.g. a backing file)
// under a temporary name and renames it, so a crash never leaves a half-made disk
// that a later Create would keep.
func (d *Driver) qemuImgCreate(ctx context.Context, disk string, size int64, extra ...string) error {
	size = (size + 511) &^ 511 // QEMU sizes disks in whole sectors
	qemuImg, err := d.qemuImg()
	if err != nil {
		return err
	}
	tmp := disk + ".tmp"
	os.Remove(tmp)
	args := append([]string{"create", "-q", "-f", "qcow2"}, extra...)
	cmd := exec.CommandContext(ctx, qemuImg, append(args, tmp, strconv.FormatInt(size, 10))...)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create disk %s: qemu-img: %s: %w", disk, strings.TrimSpace(string(out)), err)
	}
	if err := os.Rename(tmp, disk); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create disk: %w", err)
	}
	return nil
}

func roundUpGiB(n int64) int64 { return (n + 1<<30 - 1) &^ (1<<30 - 1) }

// ensureVars gives the instance its own copy of the UEFI variable store, which the
// firmware writes (boot entries); an existing copy is kept.
func ensureVars(inst *store.Instance, fw Firmware) error {
	dst := inst.Path(store.EFIVarsFile)
	if _, err := os.Stat(dst); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b, err := os.ReadFile(fw.Vars)
	if err != nil {
		return fmt.Errorf("UEFI variable store template: %w", err)
	}
	if err := store.WriteFileAtomic(dst, b, 0o600); err != nil {
		return fmt.Errorf("UEFI variable store: %w", err)
	}
	return nil
}
