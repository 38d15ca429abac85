package libvirt

import (
	"context"
	"fmt"
	"strings"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
)

var (
	_ driver.Checker     = (*Driver)(nil)
	_ driver.StateKeeper = (*Driver)(nil)
)

// Checks reports, per configured libvirt host, the connection, libvirt's and
// QEMU's versions, the hypervisor (kvm, or qemu: TCG) and fvm's pool.
func (d *Driver) Checks(ctx context.Context) []driver.Check {
	cfg, err := d.hosts()
	if err != nil {
		return []driver.Check{{Name: "libvirt", Detail: err.Error(), Fix: "fix the libvirt.* settings"}}
	}
	var out []driver.Check
	for _, h := range cfg.Hosts {
		label := "libvirt " + h.URI
		if h.Name != "" {
			label = fmt.Sprintf("libvirt %s (%s)", h.Name, h.URI)
		}
		c, err := d.clientFor(h.URI)
		var f facts
		if err == nil {
			f, err = hostFacts(ctx, c, "")
		}
		if err != nil {
			out = append(out, driver.Check{Name: label, Detail: err.Error(), Fix: "start libvirtd there, or fix libvirt.uri / FVM_LIBVIRT_URI (--backend libvirt only)"})
			continue
		}
		hv := "qemu (TCG: software emulation, slow)"
		for _, t := range f.Types {
			if t == "kvm" {
				hv = "kvm"
			}
		}
		out = append(out, driver.Check{Name: label, OK: true,
			Detail: fmt.Sprintf("libvirt %s, %s on %s; %s guests: %s; %s of memory free", f.LibVersion, f.Hypervisor, f.Hostname, f.Arch, hv, sizeText(int64(f.FreeBytes)))})
		if pool, err := (&poolAPI{c: c, t: c.t, name: cfg.Pool}).available(ctx); err == nil {
			out = append(out, driver.Check{Name: label + " pool " + cfg.Pool, OK: true, Detail: sizeText(int64(pool)) + " free"})
		} else if isNotFound(err) || strings.Contains(err.Error(), "not found") {
			out = append(out, driver.Check{Name: label + " pool " + cfg.Pool, OK: true, Detail: "not made yet: the first VM there creates it at " + poolDir(ctx, c, cfg.PoolPath, cfg.Pool)})
		} else {
			out = append(out, driver.Check{Name: label + " pool " + cfg.Pool, Detail: err.Error()})
		}
	}
	return out
}

// HasSavedState: the domain has a managed save image (a suspended VM).
func (d *Driver) HasSavedState(inst *store.Instance) bool {
	h, err := d.hostOf(inst)
	if err != nil {
		return false
	}
	l, dom, err := h.domain(context.Background())
	if err != nil {
		return false
	}
	n, err := l.DomainHasManagedSaveImage(dom, 0)
	return err == nil && n == 1
}

// DiscardState removes the managed save image (`fvm start --cold`).
func (d *Driver) DiscardState(inst *store.Instance) error {
	h, err := d.hostOf(inst)
	if err != nil {
		return err
	}
	l, dom, err := h.domain(context.Background())
	if err != nil {
		return err
	}
	return l.DomainManagedSaveRemove(dom, 0)
}
