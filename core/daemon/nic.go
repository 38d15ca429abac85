package daemon

import (
	"context"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
)

// NIC is a running VM's network interface (`fvm inspect`): its address and
// the guest's addresses on it, as its machine reports them
// (driver.NICReporter; QEMU's asks the guest agent, so it is not in Get).
func (d *Daemon) NIC(ctx context.Context, name string) (api.NIC, error) {
	if _, err := d.get(name); err != nil {
		return api.NIC{}, err
	}
	d.mu.Lock()
	m := d.entry(name).machine
	d.mu.Unlock()
	if m == nil {
		return api.NIC{}, api.Errorf(api.CodeConflict, "vm %q is not running: start it to see its network interface", name)
	}
	r, ok := m.(driver.NICReporter)
	if !ok {
		return api.NIC{}, api.Errorf(api.CodeUnsupported, "vm %q: its backend does not report its network interface", name)
	}
	n, err := r.NIC(ctx)
	if err != nil {
		return api.NIC{}, hostError(err)
	}
	return n, nil
}
