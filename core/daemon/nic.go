package daemon

import (
	"context"

	"github.com/fvmhq/fvm/core/api"
)

// NIC is a running VM's network interface (`fvm inspect`): its address and
// the guest's addresses on it, as its machine reports them
// (driver.NICReporter; QEMU's asks the guest agent, so it is not in Get).
func (d *Daemon) NIC(ctx context.Context, name string) (api.NIC, error) {
	_, _, r, err := d.lookup(ctx, name)
	if err != nil {
		return api.NIC{}, err
	}
	if r == nil {
		return api.NIC{}, api.Errorf(api.CodeConflict, "vm %q is not running: start it to see its network interface", name)
	}
	if r.NIC == nil {
		return api.NIC{}, api.Errorf(api.CodeUnsupported, "vm %q: its backend does not report its network interface", name)
	}
	n, err := r.NIC.NIC(ctx)
	if err != nil {
		return api.NIC{}, hostError(err)
	}
	return api.NIC{MAC: n.MAC, IPs: n.IPs, Source: n.Source, Error: n.Error}, nil
}
