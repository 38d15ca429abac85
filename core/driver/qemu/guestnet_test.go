package qemu

import (
	"strings"
	"testing"
)

func TestWithGuestNet(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"root=UUID=1 ro fvm.init net.ifnames=0", "root=UUID=1 ro fvm.init net.ifnames=0 fvm.net=10.0.2.15/24,10.0.2.2,10.0.2.3"},
		{"root=UUID=1 ro", "root=UUID=1 ro"},                                   // not fvm-init's: DHCP as the image does it
		{"root=UUID=1 fvm.initx", "root=UUID=1 fvm.initx"},                     // a word, not a prefix
		{"fvm.init fvm.net=192.0.2.9/24,,", "fvm.init fvm.net=192.0.2.9/24,,"}, // the image's own says
		{"", ""},
	} {
		if got := withGuestNet(c.in); got != c.want {
			t.Errorf("withGuestNet(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// fvm.net= reaches QEMU's -append but not the saved state's fingerprint: a
// warm snapshot of a template booted with DHCP still fits (its guest has the
// same address), and the next cold boot of its clones reads the new line.
func TestGuestNetOutsideTheFingerprint(t *testing.T) {
	cfg := Config{Name: "a", Disk: "/d/disk.qcow2", KernelBoot: true, Kernel: "/d/" + BootKernel, Initrd: "/d/" + BootInitrd, Append: "root=UUID=1 ro fvm.init"}
	with := cfg
	with.GuestCmdline = true
	if deviceSet(cfg) != deviceSet(with) {
		t.Error("GuestCmdline changes the device set: saved states of older VMs would not fit")
	}
	if args := strings.Join(BuildArgs(with), " "); !strings.Contains(args, "-append root=UUID=1 ro fvm.init panic=5 oops=panic "+guestNetArg) {
		t.Errorf("QEMU's args: %s", args)
	}
	// The addresses are QEMU's defaults only while netdev sets none of its own.
	if nd := netdev(22, nil); strings.Contains(nd, "net=") || strings.Contains(nd, "dhcpstart=") || strings.Contains(nd, "dns=") {
		t.Errorf("netdev %s sets addresses of its own: guestnet.go's must follow", nd)
	}
}
