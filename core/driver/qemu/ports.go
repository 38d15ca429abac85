package qemu

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/fvmhq/fvm/core/driver"
)

// AddForward forwards host (an address and port on this machine) to the
// guest's guestPort on the user network, while QEMU runs (driver.PortForwarder).
func (m *Machine) AddForward(ctx context.Context, host netip.AddrPort, guestPort uint16) error {
	rule := fmt.Sprintf("tcp:%s:%d-:%d", hostAddr(host.Addr()), host.Port(), guestPort)
	return m.hmp(ctx, "hostfwd_add net0 "+rule, "add forward "+rule)
}

// RemoveForward removes the forward of host.
func (m *Machine) RemoveForward(ctx context.Context, host netip.AddrPort) error {
	rule := fmt.Sprintf("tcp:%s:%d", hostAddr(host.Addr()), host.Port())
	return m.hmp(ctx, "hostfwd_remove net0 "+rule, "remove forward "+rule)
}

// hmp runs cmd and treats any text but a confirmation as QEMU's error.
func (m *Machine) hmp(ctx context.Context, cmd, what string) error {
	var out string
	err := qmpDo(ctx, m.p.qmp, func(q *QMP) (err error) { out, err = q.HMP(ctx, cmd); return })
	if err != nil {
		return fmt.Errorf("vm %q: %s: %w", m.name, what, err)
	}
	out = strings.TrimSpace(out)
	if out != "" && !strings.Contains(out, "removed") {
		return fmt.Errorf("vm %q: %s: %s", m.name, what, out)
	}
	return nil
}

var _ driver.PortForwarder = (*Machine)(nil)
