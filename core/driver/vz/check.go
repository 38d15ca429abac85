package vz

import (
	"context"
	"fmt"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/vm"
)

// Checks reports what `fvm check` shows for vz: the macOS version, the
// helper and its virtualization entitlement, what Virtualization.framework
// offers (limits, save state), and Rosetta on Apple silicon.
func (d *Driver) Checks(ctx context.Context) []driver.Check {
	mc := driver.Check{Name: "vz macOS", OK: true, Detail: "macOS " + d.opts.MacOS}
	if why := Unavailable("darwin", d.opts.MacOS); why != "" {
		mc.OK, mc.Detail, mc.Fix = false, why, fmt.Sprintf("update to macOS %d or later, or use --backend qemu", MinMacOS)
	}
	checks := []driver.Check{mc}
	hc := driver.Check{Name: "vz helper"}
	helper, err := d.helper()
	if err != nil {
		hc.Detail, hc.Fix = err.Error(), "make install (puts fvm.app, with the helper, in ~/Applications)"
		return append(checks, hc)
	}
	hc.OK, hc.Detail = true, helper
	if err := helperEntitled(helper); err != nil {
		hc.OK, hc.Detail, hc.Fix = false, fmt.Sprintf("%s: %v", helper, err), "rebuild and sign the bundle: make app"
	}
	checks = append(checks, hc)

	fc := driver.Check{Name: "vz"}
	caps, err := d.hostCaps(ctx)
	switch {
	case err != nil:
		fc.Detail = err.Error()
	case !caps.Supported:
		fc.Detail, fc.Fix = "Virtualization.framework says this Mac cannot run VMs", "use --backend qemu"
	default:
		fc.OK = true
		fc.Detail = fmt.Sprintf("Virtualization.framework on macOS %s (%s): %d-%d CPUs, %s-%s memory",
			caps.MacOS, caps.Arch, caps.Limits.MinCPUs, caps.Limits.MaxCPUs,
			vm.FormatSize(int64(caps.Limits.MinMemory)), vm.FormatSize(int64(caps.Limits.MaxMemory)))
		if caps.SaveRestore {
			fc.Detail += ", save state"
		}
	}
	checks = append(checks, fc)
	if err == nil && d.opts.Arch == vm.ARM64 {
		rc := driver.Check{Name: "rosetta", OK: true, Detail: "Rosetta " + string(caps.Rosetta) + " (for --rosetta)"}
		if caps.Rosetta == RosettaNotInstalled {
			rc.Fix = "softwareupdate --install-rosetta --agree-to-license"
		}
		checks = append(checks, rc)
	}
	return checks
}
