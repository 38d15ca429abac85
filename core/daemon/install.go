package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/vm"
)

// resolveISO is resolveImage for a VM installed from an ISO: there is no base image,
// the disk starts blank. The ISO is checked by content and used in place (not copied:
// installer ISOs are large and the user keeps them); it must stay until the install is
// done. A bare ISO says nothing of its arch: the host's unless one was given.
func (d *Daemon) resolveISO(spec *vm.Spec) error {
	invalid := func(format string, args ...any) error {
		return api.Errorf(api.CodeInvalid, format, args...)
	}
	switch {
	case spec.ISO == "":
		return invalid("--auto-install needs an installer: add --iso PATH (an Ubuntu server ISO)")
	case spec.Image != "":
		return invalid("vm %q: both an image (%q) and --iso given: give one", spec.Name, spec.Image)
	case !filepath.IsAbs(spec.ISO):
		return invalid("--iso %q is not an absolute path", spec.ISO)
	}
	f, err := os.OpenFile(spec.ISO, os.O_RDONLY|syscall.O_NONBLOCK, 0) // a FIFO must not block the host
	if err != nil {
		return invalid("--iso %q: %v: give the path of an installer .iso file", spec.ISO, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return invalid("--iso %q is not a regular file: give the path of an installer .iso file", spec.ISO)
	}
	format, err := image.DetectFormat(f)
	if err != nil {
		return invalid("--iso %q: %v", spec.ISO, err)
	}
	if format != image.FormatISO {
		return invalid("--iso %q is not an ISO 9660 image (its content is %s): give an installer .iso file", spec.ISO, format)
	}
	if spec.Arch == "" {
		spec.Arch = vm.HostArch()
	}
	spec.BaseImage = ""
	return nil
}

// afterInstall boots a VM again, from its disk, when its machine ended as a finished
// unattended install: the installer powers off (QEMU cannot reboot out of a direct
// kernel boot), and the user asked for a VM, not a stopped one.
func (d *Daemon) afterInstall(name string, r *driver.Run, exitErr error) {
	if r.Install == nil || exitErr != nil || !r.Install.InstallFinished() {
		return
	}
	d.log.Info("unattended install finished, booting from disk", "vm", name)
	if _, err := d.Start(context.Background(), name, api.StartRequest{}); err != nil {
		d.log.Error("boot after install", "vm", name, "err", err)
		d.mu.Lock()
		if e := d.vms[name]; e != nil && e.run == nil {
			e.err = fmt.Sprintf("boot after install: %v", err)
		}
		d.mu.Unlock()
	}
}
