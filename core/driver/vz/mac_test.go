package vz

import (
	"net"
	"testing"
	"time"
)

func TestGuestMAC(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	seen := map[string]string{}
	for _, name := range []string{"web1", "web2", "db", "a", "brave-otter"} {
		for i := range 50 {
			created := t0.Add(time.Duration(i) * time.Second)
			mac := deriveMAC(name, created)
			if len(mac) != 6 {
				t.Fatalf("%s: %d bytes", mac, len(mac))
			}
			if mac[0]&0x01 != 0 {
				t.Errorf("%s is a multicast address", mac)
			}
			if mac[0]&0x02 == 0 {
				t.Errorf("%s is not locally administered", mac)
			}
			if mac.String() == GatewayMAC {
				t.Errorf("%s is the gateway's", mac)
			}
			key := name + created.String()
			if other, dup := seen[mac.String()]; dup {
				t.Errorf("%s and %s share %s", key, other, mac)
			}
			seen[mac.String()] = key
			// Stable: the same VM always gets the same address, whatever the time zone.
			if again := deriveMAC(name, created.In(time.FixedZone("x", 3600))); again.String() != mac.String() {
				t.Errorf("%s: %s then %s", key, mac, again)
			}
		}
	}
	// A known value, so the derivation never changes under a VM (its seed and lease name it).
	if got := deriveMAC("web1", t0).String(); got != "12:53:bf:98:89:e7" {
		t.Errorf("deriveMAC(web1) = %s: the derivation changed, which breaks the network of existing VMs", got)
	}
	if _, err := net.ParseMAC(GuestMAC(baseSpec()).String()); err != nil {
		t.Fatal(err)
	}
}
