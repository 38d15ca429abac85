package driver

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
