package daemon

// The host's side of warm snapshots and clones (core/warm): the pool's
// dependencies, wired to the host's drivers, keys, VMs and events.

import (
	"context"
	"fmt"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
	"github.com/fvmhq/fvm/core/warm"
)

func (d *Daemon) newWarmPool() *warm.Pool {
	return warm.New(d.bg, warm.Options{
		Layout: d.opts.Layout,
		Log:    d.log,
		Bind: func(ctx context.Context, spec *vm.Spec) (*driver.VM, error) {
			drv, err := d.driverOf(spec)
			if err != nil {
				return nil, err
			}
			return driver.Bind(ctx, drv, spec), nil
		},
		Provision: func(inst *store.Instance, v *driver.VM) ([]byte, error) {
			return provision(d.opts.Layout, inst, v.Caps.MAC, v.Caps.SSHPort)
		},
		InUse:   d.vmBases,
		Enabled: d.warmEnabled,
		Made: func(image string, arch vm.Arch) {
			d.events.publish(api.Event{Type: api.EventImageWarm, Image: image, Arch: arch})
			d.keepSpares(spareRefill) // a wish for the snapshot this one succeeds moves to it
		},
		Target: d.target,
	})
}

// warmEnabled reads images.warm (default on) from the config file or
// FVM_IMAGES_WARM: whether the host makes snapshots by itself after cold boots.
func (d *Daemon) warmEnabled() bool {
	v, err := config.Load(d.opts.Layout)
	if err != nil || !v.IsSet(config.KeyImagesWarm) {
		return true
	}
	return v.GetBool(config.KeyImagesWarm)
}

// WarmImage makes (or finds) the warm snapshot for VMs of spec's image and
// shape, on demand (`fvm image warm`).
func (d *Daemon) WarmImage(ctx context.Context, req api.WarmRequest) (api.WarmSnapshot, error) {
	spec := req.Spec
	vm.Defaults.Fill(&spec)
	spec.Warm = ""
	if spec.Image == "" {
		return api.WarmSnapshot{}, api.Errorf(api.CodeInvalid, "no image given: fvm image warm IMAGE")
	}
	if err := d.checkBackend(spec.Backend); err != nil {
		return api.WarmSnapshot{}, err
	}
	img, release, err := d.images.Resolve(ctx, spec.Image, spec.Arch)
	if err != nil {
		return api.WarmSnapshot{}, err
	}
	defer release()
	if err := setImage(&spec, img); err != nil {
		return api.WarmSnapshot{}, err
	}
	spec.Name = cloudinit.TemplateHostname
	if err := spec.ValidateSettings(); err != nil {
		return api.WarmSnapshot{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if _, err := d.chooseDriver(ctx, &spec); err != nil {
		return api.WarmSnapshot{}, err
	}
	snap, err := d.warm.MakeNow(spec)
	if err == nil && req.Spare != nil {
		err = d.SetSpare(ctx, snap.Dir, spec, *req.Spare)
	}
	if err == nil {
		snap.Spare = d.hasSpare(snap.Dir)
	}
	return snap, err
}

// cloneRestores is how many times a clone is restored before a guest kernel
// crash after each sends it to a cold boot. Such a crash (an emulator's: seen
// under multi-threaded TCG) does not follow from the snapshot, and a restore
// costs a second or two where a cold boot costs tens.
const cloneRestores = 3

func times(n int) string {
	if n == 2 {
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

// startClone makes a clone the driver restored (m, with opts) its own
// machine (warm.Pool.Reidentify) and returns the checked connection to hold.
// A clone whose guest kernel crashed meanwhile (its serial log after
// logFrom says so) is restored again, up to cloneRestores restores in all;
// when that fails too it kills the clone and boots the VM cold, with why.
func (d *Daemon) startClone(ctx context.Context, inst *store.Instance, v *driver.VM, m driver.Machine, opts driver.StartOptions, logFrom int64, rep *startReport) (driver.Machine, *sshx.Client, string, error) {
	name := inst.Spec.Name
	serial := inst.Path(store.SerialLog)
	_, userKey, err := sshx.LoadOrCreateKey(d.opts.Layout.UserKey())
	var re warm.Reidentified
	if err == nil {
		re, err = d.reidentifyWatched(ctx, inst, v.Run(m), userKey, false, serial, logFrom)
	}
	live, crashes := m, 0 // live is killed before the cold boot
	var again error       // why a crashed clone could not be restored again
	for err != nil && v.Snaps != nil && opts.Clone != "" && crashes < cloneRestores-1 {
		crash := guestCrashed(serial, logFrom)
		if crash == "" {
			break // not a crash: the cold boot below, with why
		}
		d.log.Warn("the restored clone's guest kernel crashed: restoring it again", "vm", name, "crash", crash, "err", err)
		m.Kill()
		<-m.Done()
		live = nil
		crashes++
		rep.crashed(crash)
		// What the crashed guest wrote (its reboot provisions the disk) does
		// not go with the snapshot's memory: the clone starts on a new top.
		logFrom = serialSize(serial)
		if err = v.Snaps.Revert(ctx, inst, opts.Clone); err != nil {
			again = err
			break
		}
		if m, err = v.Start(ctx, inst, opts); err != nil {
			again = err
			break
		}
		live = m
		rep.started(m)
		if m.Info().Boot != driver.BootClone { // the driver could not restore it: it booted cold
			why := driver.JoinNotices("the warm clone's guest kernel crashed after its restore and it could not be restored again: booted cold", m.Info().Notice)
			rep.coldNote(why)
			return m, nil, why, nil
		}
		re, err = d.reidentifyWatched(ctx, inst, v.Run(m), userKey, false, serial, logFrom)
	}
	if err == nil {
		rep.reidentified(re)
		return m, re.Client, "", nil
	}
	// Never worse than a cold boot: the clone's disk boots, and cloud-init
	// provisions its own seed (a new instance id) as on a first boot.
	d.log.Warn("clone re-identification failed: booting cold", "vm", name, "err", err)
	if live != nil {
		live.Kill()
		<-live.Done()
	}
	why := fmt.Sprintf("the warm clone could not be re-identified (%v): booted cold", err)
	switch crash := guestCrashed(serial, logFrom); {
	case again != nil:
		why = fmt.Sprintf("the warm clone's guest kernel crashed after its restore and it could not be restored again (%v): booted cold", again)
	case crash != "" && crashes > 0:
		why = fmt.Sprintf("the warm clone's guest kernel crashed after its restore, %s (%q): booted cold", times(crashes+1), crash)
	case crash != "":
		why = fmt.Sprintf("the warm clone's guest kernel crashed after its restore (%q): booted cold", crash)
	case crashes > 0:
		why = fmt.Sprintf("the warm clone's guest kernel crashed after its restore; restored again, it could not be re-identified (%v): booted cold", err)
	}
	rep.fellBack(why)
	m, err = v.Start(ctx, inst, driver.StartOptions{})
	if err == nil {
		rep.started(m)
	}
	return m, nil, why, err
}

// target is how the host reaches a VM's SSH with the given pinned host key
// ("" for the VM's own).
func (d *Daemon) target(inst *store.Instance, m driver.Machine, hostKey string) sshx.Target {
	ep, err := m.SSHEndpoint(context.Background())
	if err != nil {
		return sshx.Target{}
	}
	signer, _, err := sshx.LoadOrCreateKey(d.opts.Layout.UserKey())
	if err != nil {
		return sshx.Target{}
	}
	if hostKey == "" {
		b, err := store.ReadFile(inst.Path(store.HostKeyPubFile))
		if err != nil {
			return sshx.Target{}
		}
		hostKey = string(b)
	}
	return sshx.Target{Addr: ep.String(), User: inst.Spec.User, Signer: signer, HostKey: strings.TrimSpace(hostKey)}
}
