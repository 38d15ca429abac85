package driver

import (
	"context"
	"net"
	"time"
)

// NIC is a running VM's network interface as its machine reports it
// (NICReporter, for `fvm inspect`).
type NIC struct {
	MAC string
	// IPs are the guest's addresses on the NIC; none while the guest cannot
	// say (its agent not up yet).
	IPs []string
	// Source says where IPs come from: "guest-agent" (QEMU's guest agent
	// asked now) or "dhcp-lease" (vz: the address its network leases the NIC).
	Source string
	// Error is why the guest's addresses are unknown, when they are.
	Error string
}

// HasIPv4 says whether the guest has an IPv4 address on the NIC.
func (n NIC) HasIPv4() bool {
	for _, s := range n.IPs {
		if ip := net.ParseIP(s); ip != nil && ip.To4() != nil {
			return true
		}
	}
	return false
}

// AwaitGuestIPv4 returns once the guest's agent reports an IPv4 address on
// the NIC (true), or at once when it cannot say (false), or when ctx ends
// (false); it asks every pollEvery. A cold boot's first SSH attempt waits for
// it: QEMU's user network holds a connection made before the guest has its
// address, and the guest's SYN-ACK then comes only at the forward's next
// retransmission (9 s later in one boot here), long after the guest could
// have answered.
func AwaitGuestIPv4(ctx context.Context, nics NICReporter) bool {
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := nics.NIC(qctx)
		cancel()
		switch {
		case err == nil && n.Error == "" && n.HasIPv4():
			return true
		case ctx.Err() != nil:
			return false
		case err != nil || n.Error != "":
			return false // this agent cannot say: SSH is tried at once
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pollEvery):
		}
	}
}

const pollEvery = 200 * time.Millisecond
