package qemu

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"time"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/store"
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
//     keeps its snapshot's NIC after a reboot too. So does a clone of a VM's
//     named snapshot: its NIC is the one in the snapshot's saved state (the
//     VM's own, which the guest's network config names), read while the
//     clone is made and first started (runFacts keeps it from then on).
//     Without saved memory the clone boots cold as a new instance and gets
//     DefaultMAC, which its seed's network config names.
//   - A VM that ran before addresses were per VM keeps QEMU's default, which
//     its installed network config may name (runMAC).

// GuestMAC is the address of spec's NIC.
func GuestMAC(spec *vm.Spec) string {
	switch {
	case spec.Warm != "":
		return savedMAC(spec.Warm)
	case spec.Name == cloudinit.TemplateHostname:
		return cloudinit.DefaultMAC
	}
	return deriveMAC(spec.Name, spec.Created)
}

// savedMAC is the NIC's address in the saved state of the snapshot in dir;
// cloudinit.DefaultMAC when it names none (a warm snapshot's template, a
// state from before addresses were per VM) or has no state. What it reads
// goes on QEMU's command line and into the seed: only a plain address counts.
func savedMAC(dir string) string {
	var meta stateMeta
	if store.ReadJSON(pathsOf(&store.Instance{Dir: dir}).stateMeta, &meta) == nil && macPattern.MatchString(meta.MAC) {
		return meta.MAC
	}
	return cloudinit.DefaultMAC
}

var macPattern = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)

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
