package qemu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/vm"
)

// Checks reports what `fvm check` shows for QEMU, per guest architecture: the
// binary and its version, the firmware, and how its VMs are accelerated and why.
// The host's own architecture is required; the other one is optional (OK with a
// hint; scripts/setup.sh installs both on Linux).
func (d *Driver) Checks(ctx context.Context) []driver.Check {
	native := vm.HostArch()
	probe := d.opts.Probe()
	var checks, signing, accels []driver.Check
	for _, arch := range []vm.Arch{vm.AMD64, vm.ARM64} {
		optional := arch != native
		bin := systemBinary(arch)
		c := driver.Check{Name: bin}
		qemuPath, err := d.opts.QEMUPath(arch)
		if err == nil {
			var v string
			if v, err = d.cachedVersion(ctx, qemuPath); err == nil {
				c.OK, c.Detail = true, fmt.Sprintf("%s (%s)", qemuPath, v)
			}
		}
		if err == nil && runtime.GOOS == "darwin" && !optional {
			signing = append(signing, signCheck(ctx, qemuPath))
		}
		if err != nil {
			c.Detail, c.Fix = err.Error(), installHint(bin)
			if optional {
				c.OK, c.Detail = true, fmt.Sprintf("not installed: needed only for %s images", arch)
			}
		}
		checks = append(checks, c)

		fc := driver.Check{Name: "UEFI firmware " + string(arch)}
		if fw, err := FindFirmware(arch, qemuPath, d.opts.FirmwareDirs); err == nil {
			fc.OK, fc.Detail = true, fw.Code
		} else {
			fc.Detail, fc.Fix = err.Error(), installHint("firmware-"+string(arch))
			if optional {
				fc.OK, fc.Detail = true, fmt.Sprintf("not installed: needed only for %s images", arch)
			}
		}
		checks = append(checks, fc)
		if !optional {
			accels = append(accels, accelCheck(probe, arch))
		} else if err == nil { // the binary is there
			accels = append(accels, d.foreignAccelCheck(ctx, probe, arch, qemuPath))
		}
	}

	ic := driver.Check{Name: "qemu-img"}
	if p, err := d.qemuImg(); err != nil {
		ic.Detail, ic.Fix = err.Error(), installHint("qemu-img")
	} else if v, err := d.cachedVersion(ctx, p); err != nil {
		ic.Detail, ic.Fix = err.Error(), installHint("qemu-img")
	} else {
		ic.OK, ic.Detail = true, fmt.Sprintf("%s (%s)", p, v)
	}
	checks = append(checks, ic)

	checks = append(checks, signing...)
	return append(checks, accels...)
}

// foreignAccelCheck says that guests of another arch than the host's are emulated,
// and whether this QEMU emulates arm64 pointer authentication the cheap way.
func (d *Driver) foreignAccelCheck(ctx context.Context, p HostProbe, arch vm.Arch, qemuPath string) driver.Check {
	c := driver.Check{Name: "acceleration " + string(arch), OK: true,
		Detail: fmt.Sprintf("tcg (software emulation, slow): %s guests on an %s host", arch, p.Arch)}
	if arch == vm.ARM64 {
		if d.hasPauthImpdef(ctx, qemuPath) {
			c.Detail += "; pointer authentication with -cpu max," + pauthImpdefProp
		} else {
			c.Detail += "; this QEMU lacks " + pauthImpdefProp + ", so pointer authentication is emulated in full (slower)"
		}
	}
	return c
}

// accelCheck explains the acceleration choice for guests of the host's arch. TCG is
// OK (VMs work, slowly) unless the user can fix what stands in the way of hardware
// acceleration.
func accelCheck(p HostProbe, arch vm.Arch) driver.Check {
	accel, why := detectAccel(p)
	c := driver.Check{Name: "acceleration " + string(arch), OK: true, Detail: accel}
	switch accel {
	case AccelKVM:
		c.Detail = "kvm (hardware virtualization)"
	case AccelHVF:
		c.Detail = "hvf (Hypervisor.framework)"
	default:
		c.Detail = "tcg (software emulation, slow): " + why
	}
	if accel == AccelTCG && p.OS == "linux" {
		switch {
		case errors.Is(p.KVMErr, fs.ErrPermission):
			c.OK, c.Fix = false, "sudo usermod -aG kvm $USER, then log in again"
		case errors.Is(p.KVMErr, fs.ErrNotExist):
			c.OK, c.Fix = false, "enable virtualization (VT-x/AMD-V, or nested virtualization) and run: sudo modprobe kvm_intel (or kvm_amd)"
		}
	}
	return c
}

var _ driver.Checker = (*Driver)(nil)
