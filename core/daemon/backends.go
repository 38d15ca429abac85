package daemon

import (
	"context"
	"fmt"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/vm"
)

// backends describes the host's drivers (preferred first), each with what a
// plain VM of this host's arch can do on it, and the known backends it lacks.
func (d *Daemon) backends(ctx context.Context) []api.Backend {
	var out []api.Backend
	for _, drv := range d.opts.Drivers {
		plain := vm.Spec{Arch: vm.HostArch(), Backend: drv.Name()}
		out = append(out, api.Backend{Name: drv.Name(), Available: true, Features: drv.Caps(ctx, &plain).List()})
	}
	for _, u := range d.opts.Unavailable {
		out = append(out, api.Backend{Name: u.Name, Reason: u.Reason})
	}
	return out
}

// driverOf returns the driver of an existing VM: the backend saved in its spec,
// for the VM's whole life.
func (d *Daemon) driverOf(spec *vm.Spec) (driver.Driver, error) {
	name := spec.Backend
	if name == "" && len(d.opts.Drivers) > 0 {
		name = d.opts.Drivers[0].Name() // written before the backend was saved: there was only one
	}
	if drv := d.driverNamed(name); drv != nil {
		return drv, nil
	}
	if u, ok := d.unavailable(name); ok {
		return nil, api.Errorf(api.CodeUnsupported, "vm %q runs on the %s backend, which this host cannot run: %s", spec.Name, name, u.Reason)
	}
	return nil, api.Errorf(api.CodeUnsupported, "vm %q runs on backend %q, which this fvm does not know (it has %s): use the fvm that made it", spec.Name, name, d.driverNames())
}

func (d *Daemon) driverNamed(name string) driver.Driver {
	for _, drv := range d.opts.Drivers {
		if drv.Name() == name {
			return drv
		}
	}
	return nil
}

func (d *Daemon) unavailable(name string) (driver.Unavailable, bool) {
	for _, u := range d.opts.Unavailable {
		if u.Name == name {
			return u, true
		}
	}
	return driver.Unavailable{}, false
}

func (d *Daemon) driverNames() string {
	var names []string
	for _, drv := range d.opts.Drivers {
		names = append(names, drv.Name())
	}
	return strings.Join(names, ", ")
}

// checkBackend refuses, before any work, a backend the host cannot run.
func (d *Daemon) checkBackend(name string) error {
	if vm.IsAuto(name) || d.driverNamed(name) != nil {
		return nil
	}
	if u, ok := d.unavailable(name); ok {
		return api.Errorf(api.CodeUnsupported, "--backend %s is not available on this host: %s", name, u.Reason)
	}
	return api.Errorf(api.CodeInvalid, "--backend %q is unknown: use auto or one of %s", name, d.driverNames())
}

// chooseDriver picks the driver of a new VM whose image is resolved: the one
// asked for, or with auto the first (in the platform's order of preference)
// that can run the spec. It records the choice in spec.Backend and returns
// the driver bound to the spec. The caller has refused an unknown backend
// (checkBackend) before any work.
func (d *Daemon) chooseDriver(ctx context.Context, spec *vm.Spec) (*driver.VM, error) {
	if !vm.IsAuto(spec.Backend) {
		if d.driverNamed(spec.Backend) == nil {
			return nil, d.checkBackend(spec.Backend)
		}
		v, err := validate(ctx, d.driverNamed(spec.Backend), spec)
		if err != nil {
			return nil, api.Errorf(api.CodeUnsupported, "%v", err)
		}
		return v, nil
	}
	if len(d.opts.Drivers) == 0 {
		return nil, api.Errorf(api.CodeUnsupported, "this host has no backend to run VMs")
	}
	var why []string
	var last error
	for _, drv := range d.opts.Drivers {
		var v *driver.VM
		if v, last = validate(ctx, drv, spec); last == nil {
			spec.Backend = drv.Name()
			return v, nil
		}
		why = append(why, fmt.Sprintf("%s: %v", drv.Name(), last))
	}
	if len(why) == 1 {
		return nil, api.Errorf(api.CodeUnsupported, "%v", last)
	}
	return nil, api.Errorf(api.CodeUnsupported, "no backend of this host can run vm %q: %s", spec.Name, strings.Join(why, "; "))
}

// validate binds drv to spec and checks that it can run it: what the spec's
// options need of the VM's Caps (so `auto` passes over a driver without
// them), then the driver's own Validate.
func validate(ctx context.Context, drv driver.Driver, spec *vm.Spec) (*driver.VM, error) {
	v := driver.Bind(ctx, drv, spec)
	if err := driver.CheckNeeds(drv.Name(), spec, v.Caps); err != nil {
		return nil, err
	}
	if err := drv.Validate(ctx, spec); err != nil {
		return nil, err
	}
	return v, nil
}
