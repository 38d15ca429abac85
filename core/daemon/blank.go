package daemon

import (
	"context"
	"fmt"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Blank VMs, as the original tool made them: `fvm create --name X` with no
// image and no ISO gives an empty disk of --disk, on which the firmware finds
// nothing to boot (its screen and serial console say so). An installer is
// attached later by `fvm start X --iso FILE`, which makes the VM one
// installed from that ISO (as `fvm create --iso` would have): the ISO is a
// CD-ROM that boots after the disk, so once a system is installed the disk
// boots.

// resolveBlank is resolveImage for a blank VM: no base, the host's arch
// unless one was given.
func resolveBlank(spec *vm.Spec) {
	if spec.Arch == "" {
		spec.Arch = vm.HostArch()
	}
	spec.BaseImage = ""
}

// attachISO records iso as the installer of a VM made without an image,
// before its start: checked by content as `create --iso` checks it. The VM's
// spec changed, so its driver is bound to it again (what it can do changed:
// an ISO install is never cloned, for one).
func (d *Daemon) attachISO(ctx context.Context, inst *store.Instance, v *driver.VM, iso string) (*driver.VM, error) {
	spec := &inst.Spec
	if spec.Image != "" {
		return nil, api.Errorf(api.CodeInvalid, "vm %q boots its image %q: --iso installs onto a VM made without one (`fvm create --name NAME`, then `fvm start NAME --iso FILE`)", spec.Name, spec.Image)
	}
	if !v.Caps.InstallISO {
		return nil, api.Errorf(api.CodeUnsupported, "vm %q runs on %s, which does not boot installer ISOs: %s", spec.Name, v.Name(), v.Caps.WhyNot(driver.CapInstallISO, v.Name()))
	}
	check := *spec
	check.ISO, check.AutoInstall = iso, false
	if err := d.resolveISO(&check); err != nil {
		return nil, err
	}
	spec.ISO, spec.AutoInstall, spec.Blank = check.ISO, false, false
	if err := inst.SaveSpec(); err != nil {
		return nil, hostError(fmt.Errorf("vm %q: record the installer: %w", spec.Name, err))
	}
	d.log.Info("installer attached", "vm", spec.Name, "iso", spec.ISO)
	d.mu.Lock()
	d.entry(spec.Name).vm = nil
	d.mu.Unlock()
	return d.bind(ctx, inst)
}
