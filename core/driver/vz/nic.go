package vz

import (
	"context"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
)

var _ driver.NICReporter = (*Machine)(nil)

// NIC is the VM's NIC address and the address the helper's network leases
// it (fixed to the MAC), from the run's plan.
func (m *Machine) NIC(context.Context) (driver.NIC, error) {
	var p Plan
	if err := store.ReadJSON(m.p.plan, &p); err != nil {
		return driver.NIC{}, err
	}
	n := driver.NIC{MAC: p.Network.MAC, Source: "dhcp-lease"}
	if p.Network.GuestIP != "" {
		n.IPs = []string{p.Network.GuestIP}
	}
	return n, nil
}
