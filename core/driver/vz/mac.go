package vz

import (
	"bytes"
	"crypto/sha256"
	"net"
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

// GuestMAC is the VM's NIC address: derived from its name and creation time,
// so it is stable for the VM's life (the DHCP lease and the seed's network
// config match it) and differs between VMs, even one re-created under the
// same name. It is unicast and locally administered (IEEE 802: bit 0 of the
// first octet clear, bit 1 set), so it can never be a vendor's address.
func GuestMAC(s *vm.Spec) net.HardwareAddr {
	return deriveMAC(s.Name, s.Created)
}

func deriveMAC(name string, created time.Time) net.HardwareAddr {
	sum := sha256.Sum256([]byte("fvm vz mac\x00" + name + "\x00" + created.UTC().Format(time.RFC3339Nano)))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	if gw, _ := net.ParseMAC(GatewayMAC); bytes.Equal(mac, gw) {
		mac[5] ^= 0x01 // never the gateway's (one chance in 2^46)
	}
	return mac
}
