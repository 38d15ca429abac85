package warm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Decision says whether a VM starts from a warm snapshot.
type Decision struct {
	Dir    string // the snapshot to use; "" for none
	Notice string // why not, for the user; "" when there simply is none (yet)
}

// errNoClones means the VM's driver makes no clones of it (Caps.WarmClone).
var errNoClones = errors.New("no warm clones")

// fingerprint is what a snapshot must have been made with to serve spec, or
// why none can (wrapping errNoClones, with the driver's reason).
func (p *Pool) fingerprint(ctx context.Context, spec *vm.Spec) (string, error) {
	v, err := p.opts.Bind(ctx, spec)
	if err != nil {
		return "", err
	}
	return fingerprintOf(ctx, v, spec)
}

func fingerprintOf(ctx context.Context, v *driver.VM, spec *vm.Spec) (string, error) {
	if v.Warm == nil {
		return "", fmt.Errorf("%w: %s", errNoClones, v.Caps.WhyNot(driver.CapWarmClone, v.Name()))
	}
	if spec.BaseImage == "" {
		return "", fmt.Errorf("%w: vm %q has no base image", errNoClones, spec.Name)
	}
	return v.Warm.WarmFingerprint(ctx, spec)
}

// Decide is the one place that says whether a VM of spec, its driver bound
// as v, is made from a warm snapshot: at create (the clone's disk, then
// CreateInput.Clone) and, through ForStart, at its first start (the restore,
// StartOptions.Clone). A snapshot serves when it was made by the same driver
// with the same fingerprint (hypervisor, firmware, devices) for the same shape,
// and the VM's disk is not smaller than the snapshot's. The notice says why
// not when a snapshot of the shape exists but does not serve.
func (p *Pool) Decide(ctx context.Context, v *driver.VM, spec *vm.Spec) Decision {
	if spec.BaseImage == "" {
		return Decision{}
	}
	shape := ShapeKey(spec)
	others, _ := filepath.Glob(filepath.Join(p.opts.Layout.WarmDir(), shape+"-*"))
	fp, err := fingerprintOf(ctx, v, spec)
	if err != nil {
		if len(others) == 0 || !errors.Is(err, errNoClones) {
			return Decision{}
		}
		return Decision{Notice: v.Caps.WhyNot(driver.CapWarmClone, v.Name()) + ": booting cold"}
	}
	dir := p.dir(shape, fp)
	info, err := Load(dir)
	if err == nil && info.Fingerprint != fp {
		err = errors.New("fingerprint differs")
	}
	if err != nil {
		if len(others) > 0 {
			return Decision{Notice: "the warm snapshot of " + spec.Image + " was made by another QEMU or fvm: booting cold (a new one is made after this boot)"}
		}
		return Decision{}
	}
	if spec.DiskBytes < info.DiskBytes {
		return Decision{Notice: fmt.Sprintf("--disk %s is smaller than the warm snapshot's %s: booting cold", vm.FormatSize(spec.DiskBytes), vm.FormatSize(info.DiskBytes))}
	}
	return Decision{Dir: dir}
}

// ForStart decides whether this start of inst restores its warm snapshot:
// only a clone's first start does (from then on its disk has moved on from
// the snapshot's memory, whatever that start did), never over the VM's own
// saved state, and only while the snapshot still serves it (Decide). A clone
// whose snapshot no longer fits boots cold from its disk, with the notice.
func (p *Pool) ForStart(ctx context.Context, v *driver.VM, inst *store.Instance) Decision {
	spec := &inst.Spec
	if spec.Warm == "" || startedBefore(inst) || (v.States != nil && v.States.HasSavedState(inst)) {
		return Decision{}
	}
	if filepath.Dir(spec.Warm) != filepath.Clean(p.opts.Layout.WarmDir()) {
		return p.forOrigin(ctx, v, spec)
	}
	d := p.Decide(ctx, v, spec)
	if d.Dir != spec.Warm {
		if d.Notice == "" {
			d.Notice = "the warm snapshot is gone or does not fit: booting cold"
		}
		return Decision{Notice: d.Notice}
	}
	return d
}

// startedBefore: every start writes the VM's runtime record before its
// hypervisor runs (store.Runtime), so a VM without one never began a run.
func startedBefore(inst *store.Instance) bool {
	_, err := os.Lstat(inst.Path(store.RuntimeFile))
	return err == nil
}

// unsupported codes a refusal of a snapshot for the API.
func unsupported(image string, err error) error {
	return api.Errorf(api.CodeUnsupported, "image %s: %v", image, err)
}

// forOrigin decides a clone's first start from the named snapshot it was
// made from (fvm clone: its own copy, spec.Warm): restored when its memory
// was saved by what the clone runs on now (the same fingerprint), cold
// otherwise, with why; a disk-only snapshot boots cold by design.
func (p *Pool) forOrigin(ctx context.Context, v *driver.VM, spec *vm.Spec) Decision {
	info, err := Load(spec.Warm)
	if err != nil {
		return Decision{Notice: "the snapshot it was cloned from cannot be read: booting cold"}
	}
	if info.DiskOnly {
		return Decision{}
	}
	fp, err := fingerprintOf(ctx, v, spec)
	if err != nil {
		return Decision{Notice: v.Caps.WhyNot(driver.CapWarmClone, v.Name()) + ": booting cold"}
	}
	if fp != info.Fingerprint {
		return Decision{Notice: "the snapshot's memory was saved by another QEMU, firmware or fvm: booting its disk cold"}
	}
	return Decision{Dir: spec.Warm}
}
