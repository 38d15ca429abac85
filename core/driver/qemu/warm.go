package qemu

import (
	"context"
	"fmt"
	"os"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Warm snapshots. A snapshot is a template instance directory that the host
// booted once (Create, Start), then suspended and froze: its disk, firmware
// variables and saved state become read-only and are shared by every clone. A
// clone's disk is an overlay on the snapshot's; its first start restores the
// snapshot's memory under a new VM generation id, grows the disk to its size,
// and the host re-identifies the guest before anyone can use it.

// config resolves what QEMU needs for spec (binary, accel, firmware) into a
// Config over the instance paths p; ports, the SSH port and the generation id
// are the caller's. bootDisk is the disk whose content says whether the VM's
// kernel is booted directly (kernelboot.go): the VM's own, or for what a
// snapshot of spec would be, its base.
func (d *Driver) config(ctx context.Context, spec *vm.Spec, p paths, seed bool, bootDisk string) (Config, string, string, error) {
	qemuPath, err := d.opts.QEMUPath(spec.Arch)
	if err != nil {
		return Config{}, "", "", err
	}
	accel, notice, err := d.Accel(spec)
	if err != nil {
		return Config{}, "", "", err
	}
	fw, err := FindFirmware(spec.Arch, qemuPath, d.opts.FirmwareDirs)
	if err != nil {
		return Config{}, "", "", err
	}
	cfg := Config{
		Name: spec.Name, Arch: spec.Arch, Accel: accel, CPUs: spec.CPUs, MemoryMiB: spec.MemoryMiB,
		Firmware: fw, VarsFile: p.vars, Disk: p.disk, Ports: spec.Ports,
		SerialLog: p.serial, SerialSocket: p.serialSock, QMPSocket: p.qmp, PIDFile: p.pid, QGASocket: p.qga,
		Display: true, VNCSocket: p.vnc,
		TBSizeMiB: max(d.opts.TCGCacheMiB, 0),
	}
	if cfg.Sound = cfg.Display && !spec.NoSound; cfg.Sound { // sound.go
		cfg.AudioDev = d.audioDev(ctx, qemuPath, p.dir)
	}
	cfg.PauthImpdef = spec.Arch == vm.ARM64 && accel == AccelTCG && d.hasPauthImpdef(ctx, qemuPath)
	if seed {
		cfg.Seed = p.seed
	}
	if kernelBootArch(spec.Arch) && spec.ISO == "" && !spec.AutoInstall && bootDisk != "" {
		gb, err := readGuestBoot(bootDisk)
		if err != nil {
			return Config{}, "", "", fmt.Errorf("disk %s: %w", bootDisk, err)
		}
		if gb.Cmdline != "" {
			cfg.KernelBoot, cfg.Append, cfg.GuestCmdline = true, gb.Cmdline, true
			cfg.Kernel, cfg.Initrd = kernelBootFiles(p.dir)
		}
	}
	return cfg, qemuPath, notice, nil
}

// WarmFingerprint is the fingerprint a warm snapshot must have for a VM of
// spec to be cloned from it (driver.Warmer): the same QEMU, firmware and device
// set. Which VMs can be cloned at all is Caps' answer.
func (d *Driver) WarmFingerprint(ctx context.Context, spec *vm.Spec) (string, error) {
	cfg, qemuPath, _, err := d.config(ctx, spec, pathsOf(&store.Instance{Dir: "/warm"}), true, spec.BaseImage)
	if err != nil {
		return "", err
	}
	fp, err := d.fingerprint(ctx, qemuPath, cfg)
	if err != nil {
		return "", err
	}
	return fp.Key(), nil
}

// FreezeSnapshot turns a suspended template instance into a snapshot: its
// disk, variables and state read-only from now on. It returns the fingerprint
// of the state (driver.Warmer).
func (d *Driver) FreezeSnapshot(inst *store.Instance) (string, error) {
	p := pathsOf(inst)
	meta, ok := loadState(p)
	if !ok {
		return "", fmt.Errorf("template %s has no saved state", inst.Dir)
	}
	if meta.SharedMemory {
		if err := syncMemoryFile(p); err != nil {
			return "", fmt.Errorf("template %s: its memory file: %w", inst.Dir, err)
		}
	}
	for _, f := range []string{p.disk, p.vars, p.state, p.stateMeta} {
		if err := os.Chmod(f, store.ReadOnlyFile); err != nil {
			return "", fmt.Errorf("freeze %s: %w", f, err)
		}
	}
	return meta.Fingerprint.Key(), nil
}

// createClone makes a clone's disk, an overlay on the snapshot's frozen disk
// (a warm snapshot's, or the layer a named snapshot links to), and its copy
// of the snapshot's firmware variables. With the snapshot's memory it is made
// at the snapshot's size (it grows at the first start, while the restored
// guest can see it); without, at the VM's size at once (it boots cold). The
// host decided that the snapshot fits.
func (d *Driver) createClone(ctx context.Context, inst *store.Instance, snapshot string) error {
	sp := pathsOf(&store.Instance{Dir: snapshot})
	p := pathsOf(inst)
	if !exists(p.disk) {
		frozen, err := frozenDisk(snapshot)
		if err != nil {
			return err
		}
		var size int64
		if _, memory := loadState(sp); !memory {
			if info, err := image.Inspect(frozen); err == nil && inst.Spec.DiskBytes > info.VirtualSize {
				size = inst.Spec.DiskBytes
			}
		}
		if err := d.qemuImgCreate(ctx, p.disk, size, "-F", "qcow2", "-b", frozen); err != nil {
			return err
		}
	}
	if exists(p.vars) {
		return nil
	}
	b, err := store.ReadFileLimited(sp.vars, maxVarsFile)
	if err != nil {
		return fmt.Errorf("snapshot variables: %w", err)
	}
	return store.WriteFileAtomic(p.vars, b, 0o600)
}

// growDisk makes the guest's disk diskBytes while it is paused after a restore.
func growDisk(ctx context.Context, p paths, diskBytes int64) error {
	info, err := image.Inspect(p.disk)
	if err != nil {
		return err
	}
	size := (diskBytes + 511) &^ 511
	if size <= info.VirtualSize {
		return nil
	}
	err = qmpDo(ctx, p.qmp, func(q *QMP) error {
		return q.Execute(ctx, "block_resize", map[string]any{"device": "disk0", "size": size}, nil)
	})
	if err != nil {
		return fmt.Errorf("grow the clone's disk to %s: %w", vm.FormatSize(size), err)
	}
	return nil
}

var _ driver.Warmer = (*Driver)(nil)
