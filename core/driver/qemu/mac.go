package qemu

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/vm"
)

// Every QEMU VM's NIC has an address of its own, derived from its identity
// (name and creation time) as vz's is: stable for the VM's life (its seed's
// network config and DHCP see the same NIC each boot), different for a VM
// re-created under the same name. It keeps QEMU's locally administered prefix
// 52:54:00. Two exceptions keep what the guest already knows:
//
//   - A warm snapshot's template and its clones use cloudinit.DefaultMAC: the
//     NIC's address is device state, restored into every clone, and a clone
//     keeps its snapshot's NIC after a reboot too.
//   - A VM that ran before addresses were per VM keeps QEMU's default, which
//     its installed network config may name (runMAC).

// GuestMAC is the address of spec's NIC.
func GuestMAC(spec *vm.Spec) string {
	if spec.Warm != "" || spec.Name == cloudinit.TemplateHostname {
		return cloudinit.DefaultMAC
	}
	return deriveMAC(spec.Name, spec.Created)
}

func deriveMAC(name string, created time.Time) string {
	sum := sha256.Sum256([]byte("fvm qemu mac\x00" + name + "\x00" + created.UTC().Format(time.RFC3339Nano)))
	mac := fmt.Sprintf("52:54:00:%02x:%02x:%02x", sum[0], sum[1], sum[2])
	if mac == cloudinit.DefaultMAC { // one chance in 2^24: never a template's
		mac = fmt.Sprintf("52:54:00:%02x:%02x:%02x", sum[0], sum[1], sum[2]^1)
	}
	return mac
}

// runMAC is the address for a run: the one recorded by earlier runs, QEMU's
// default for a VM that ran before addresses were per VM (its facts have no
// address), GuestMAC for a VM's first run.
func runMAC(spec *vm.Spec, old runFacts) string {
	switch {
	case old.MAC != "":
		return old.MAC
	case old.QEMU != "":
		return cloudinit.DefaultMAC
	}
	return GuestMAC(spec)
}
