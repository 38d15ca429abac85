package libvirt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
)

// Start boots the domain (libvirt resumes it from its managed save when it has
// one) and returns once it runs.
func (d *Driver) Start(ctx context.Context, inst *store.Instance, opts driver.StartOptions) (driver.Machine, error) {
	name := inst.Spec.Name
	h, err := d.hostOf(inst)
	if err != nil {
		return nil, err
	}
	l, dom, err := h.domain(ctx)
	if err != nil {
		return nil, fmt.Errorf("vm %q: libvirt %s: domain %s: %w", name, h.c.t.uri, h.rec.Domain, err)
	}
	if st, _, err := l.DomainGetState(dom, 0); err == nil && golibvirt.DomainState(st) != golibvirt.DomainShutoff {
		return nil, fmt.Errorf("vm %q: its domain %s is running already (started outside fvm?)", name, h.rec.Domain)
	}
	saved, _ := l.DomainHasManagedSaveImage(dom, 0)
	boot := driver.BootCold
	if saved == 1 {
		boot = driver.BootResumed
	} else {
		// The serial log holds this boot only: start it afresh, here and there.
		h.vols.refresh(ctx)
		h.vols.remove(ctx, serialVolume(name))
		os.Remove(inst.Path(SerialCopy))
	}
	t0 := time.Now()
	if _, err := l.DomainCreateWithFlags(dom, 0); err != nil {
		return nil, fmt.Errorf("vm %q: libvirt %s: start domain %s: %w", name, h.c.t.uri, h.rec.Domain, err)
	}
	notice := ""
	if h.rec.Accel == "tcg" {
		notice = h.rec.AccelWhy
		if notice == "" { // a record from before AccelWhy, or --accel tcg
			notice = noKVMNotice
		}
	}
	m := d.newMachine(inst, h, dom, driver.MachineInfo{Accel: h.rec.Accel, StartedAt: t0, Boot: boot, Notice: notice, ClockStale: boot == driver.BootResumed})
	if boot == driver.BootResumed {
		m.setClock(ctx)
	}
	return m, nil
}

// Attach re-adopts a running domain: libvirt kept it running while no fvm host
// was there.
func (d *Driver) Attach(ctx context.Context, inst *store.Instance) (driver.Machine, error) {
	h, err := d.hostOf(inst)
	if noRecord(errors.Unwrap(err)) || errors.Is(err, os.ErrNotExist) {
		return nil, driver.ErrNotRunning
	}
	if err != nil {
		return nil, err
	}
	l, dom, err := h.domain(ctx)
	if isNotFound(err) {
		return nil, driver.ErrNotRunning
	}
	if err != nil {
		return nil, err
	}
	st, _, err := l.DomainGetState(dom, 0)
	if err != nil {
		return nil, err
	}
	switch golibvirt.DomainState(st) {
	case golibvirt.DomainShutoff, golibvirt.DomainCrashed:
		return nil, driver.ErrNotRunning
	}
	return d.newMachine(inst, h, dom, driver.MachineInfo{Accel: h.rec.Accel}), nil
}

// Delete destroys the domain if it runs, undefines it (with its managed save
// and UEFI variables) and removes its volumes; bases stay for other VMs
// (PruneBases removes unused ones).
func (d *Driver) Delete(ctx context.Context, inst *store.Instance) error {
	h, err := d.hostOf(inst)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // nothing was made on a libvirt host
		}
		return err
	}
	var errs []error
	l, dom, err := h.domain(ctx)
	switch {
	case isNotFound(err):
	case err != nil:
		return fmt.Errorf("libvirt %s: %w", h.c.t.uri, err)
	default:
		if st, _, err := l.DomainGetState(dom, 0); err == nil && golibvirt.DomainState(st) != golibvirt.DomainShutoff {
			if err := l.DomainDestroyFlags(dom, 0); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("destroy %s: %w", h.rec.Domain, err))
			}
		}
		flags := golibvirt.DomainUndefineManagedSave | golibvirt.DomainUndefineSnapshotsMetadata | golibvirt.DomainUndefineNvram
		if err := l.DomainUndefineFlags(dom, flags); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("undefine %s: %w", h.rec.Domain, err))
		}
	}
	name := inst.Spec.Name
	if name == "" { // a broken VM: its name is its directory's
		name = h.rec.Domain[len(DomainPrefix):]
	}
	h.vols.refresh(ctx) // the serial log is a file virtlogd made: a volume once refreshed
	for _, v := range []string{diskVolume(name), seedVolume(name), serialVolume(name), saveVolume(name)} {
		if err := h.vols.remove(ctx, v); err != nil {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("libvirt %s: %w", h.c.t.uri, err)
	}
	return nil
}

// BasesInUse: none of this machine's cached bases; a libvirt VM reads its
// base's copy in the pool.
func (d *Driver) BasesInUse(dir string) ([]string, error) { return nil, nil }

// OpenLog opens the local copy of the serial log, which a running machine
// keeps in step with the libvirt host's (machine.go).
func (d *Driver) OpenLog(inst *store.Instance, name string) (driver.LogFile, error) {
	if name == driver.LogSerial {
		if _, err := os.Stat(inst.Path(SerialCopy)); errors.Is(err, os.ErrNotExist) {
			d.syncSerialOnce(inst) // a stopped VM's log, fetched once
		}
	}
	return driver.OpenLocalLog(inst, name)
}
