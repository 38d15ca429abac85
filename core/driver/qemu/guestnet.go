package qemu

import "strings"

// QEMU's user-mode network as fvm runs it (netdev: no net=, host=, dns= or
// dhcpstart= of its own, so QEMU's defaults): the guest's address, the host
// as its gateway, and QEMU's DNS forwarder. Every VM has its own QEMU, so
// every guest has the same address, and its port forwards reach it there.
const (
	guestAddr    = "10.0.2.15/24"
	guestGateway = "10.0.2.2"
	guestDNS     = "10.0.2.3"
)

// guestNetArg tells fvm-init's fvm-net (the lean image's, debianbuild
// fvminit.go) the address, gateway and DNS server to set: its DHCP (ifup,
// dhclient and their hooks, each a program under emulation) held the guest
// agent, and so SSH, for 8-14 s of a 40 s cold boot under TCG.
const guestNetArg = "fvm.net=" + guestAddr + "," + guestGateway + "," + guestDNS

// withGuestNet adds guestNetArg to a command line that turns fvm-init on
// (fvm.init) and does not already say fvm.net=; any other is returned as is.
func withGuestNet(cmdline string) string {
	init := false
	for _, f := range strings.Fields(cmdline) {
		if strings.HasPrefix(f, "fvm.net=") {
			return cmdline
		}
		init = init || f == "fvm.init"
	}
	if !init {
		return cmdline
	}
	return strings.TrimSpace(cmdline) + " " + guestNetArg
}
