package qemu

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
)

var _ driver.NICReporter = (*Machine)(nil)

// NIC is the VM's NIC address (kept in its facts) and the guest's addresses
// on it, from the guest agent.
func (m *Machine) NIC(ctx context.Context) (driver.NIC, error) {
	var f runFacts
	if err := store.ReadJSON(filepath.Join(m.p.dir, FactsFile), &f); err != nil {
		return driver.NIC{}, err
	}
	n := driver.NIC{MAC: f.MAC, Source: "guest-agent"}
	if n.MAC == "" { // a run from before addresses were per VM (runMAC)
		n.MAC = cloudinit.DefaultMAC
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var ifaces []qgaInterface
	if err := qgaCall(ctx, m.p.qga, "guest-network-get-interfaces", nil, &ifaces); err != nil {
		n.Error = err.Error()
		return n, nil
	}
	n.IPs = guestIPs(ifaces, n.MAC)
	return n, nil
}

// qgaInterface is one entry of guest-network-get-interfaces.
type qgaInterface struct {
	Name         string `json:"name"`
	HardwareAddr string `json:"hardware-address"`
	IPAddresses  []struct {
		Type   string `json:"ip-address-type"`
		Addr   string `json:"ip-address"`
		Prefix int    `json:"prefix"`
	} `json:"ip-addresses"`
}

// guestIPs are the addresses of the guest's interface with the NIC's MAC,
// IPv4 first.
func guestIPs(ifaces []qgaInterface, mac string) []string {
	var v4, v6 []string
	for _, i := range ifaces {
		if !strings.EqualFold(i.HardwareAddr, mac) {
			continue
		}
		for _, a := range i.IPAddresses {
			if a.Type == "ipv4" {
				v4 = append(v4, a.Addr)
			} else {
				v6 = append(v6, a.Addr)
			}
		}
	}
	return append(v4, v6...)
}
