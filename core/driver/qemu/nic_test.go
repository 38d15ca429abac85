package qemu

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestGuestIPs reads a guest agent's guest-network-get-interfaces answer (as
// qemu-guest-agent 9 gives it) and keeps the addresses of the NIC's interface.
func TestGuestIPs(t *testing.T) {
	answer := `[{"name":"lo","ip-addresses":[{"ip-address-type":"ipv4","ip-address":"127.0.0.1","prefix":8}],"hardware-address":"00:00:00:00:00:00"},
	{"name":"enp0s2","ip-addresses":[{"ip-address-type":"ipv6","ip-address":"fec0::5054:ff:fe12:abcd","prefix":64},{"ip-address-type":"ipv4","ip-address":"10.0.2.15","prefix":24}],"hardware-address":"52:54:00:12:ab:cd"}]`
	var ifaces []qgaInterface
	if err := json.Unmarshal([]byte(answer), &ifaces); err != nil {
		t.Fatal(err)
	}
	if got := guestIPs(ifaces, "52:54:00:12:AB:CD"); !slices.Equal(got, []string{"10.0.2.15", "fec0::5054:ff:fe12:abcd"}) {
		t.Errorf("guestIPs = %q", got)
	}
	if got := guestIPs(ifaces, "52:54:00:00:00:01"); got != nil {
		t.Errorf("another NIC: %q", got)
	}
}
