package qemu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// createDisk makes the instance's qcow2 overlay on its base. It takes the same
// short time whatever the base's size: only a header pointing at the base is written.
// An existing overlay is kept (Create is idempotent).
// The base was resolved and checked by the host (a standalone qcow2 or raw disk
// in the cache): it is not inspected again.
func (d *Driver) createDisk(ctx context.Context, inst *store.Instance, in driver.CreateInput) error {
	disk := inst.Path(DiskFile)
	if exists(disk) {
		return nil
	}
	spec := &inst.Spec
	if in.Clone != "" {
		return d.createClone(ctx, inst, in.Clone)
	}
	base := in.Base
	if base == nil && (spec.ISO != "" || spec.Blank) {
		return d.createEmptyDisk(ctx, disk, spec.DiskBytes)
	}
	if base == nil || base.Path == "" {
		return fmt.Errorf("vm %q has no base image resolved", spec.Name)
	}
	if base.Format != "qcow2" && base.Format != "raw" {
		return fmt.Errorf("base image %s is %q, not qcow2 or raw", base.Path, base.Format)
	}
	path, err := filepath.Abs(base.Path) // the overlay records this path
	if err != nil {
		return err
	}
	size := spec.DiskBytes
	if size == 0 {
		size = base.VirtualSize
	}
	if size < base.VirtualSize {
		return fmt.Errorf("--disk %s is smaller than the image's %s: use --disk %s or more",
			vm.FormatSize(size), vm.FormatSize(base.VirtualSize), vm.FormatSize(roundUpGiB(base.VirtualSize)))
	}
	return d.qemuImgCreate(ctx, disk, size, "-F", base.Format, "-b", path)
}

// qemuImgCreate makes a qcow2 of size bytes at disk (extra: e.g. a backing file;
// size 0: the backing file's) under a temporary name and renames it, so a crash
// never leaves a half-made disk that a later Create would keep.
func (d *Driver) qemuImgCreate(ctx context.Context, disk string, size int64, extra ...string) error {
	qemuImg, err := d.qemuImg()
	if err != nil {
		return err
	}
	tmp := disk + ".tmp"
	os.Remove(tmp)
	args := append(append([]string{"create", "-q", "-f", "qcow2"}, extra...), tmp)
	if size > 0 {
		args = append(args, strconv.FormatInt((size+511)&^511, 10)) // QEMU sizes disks in whole sectors
	}
	cmd := proc.DiesWithHost(exec.CommandContext(ctx, qemuImg, args...))
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
