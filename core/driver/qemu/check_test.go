package qemu

import (
	"context"
	"testing"
)

func TestChecks(t *testing.T) {
	d := New(Options{Probe: func() HostProbe { return HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_pvm")} }})
	checks := d.Checks(context.Background())
	byName := map[string]bool{}
	for _, c := range checks {
		t.Logf("%-26s ok=%-5v %s  %s", c.Name, c.OK, c.Detail, c.Fix)
		byName[c.Name] = true
		if !c.OK && c.Fix == "" {
			t.Errorf("%s fails without a fix", c.Name)
		}
	}
	for _, n := range []string{"qemu-system-x86_64", "qemu-system-aarch64", "UEFI firmware amd64", "qemu-img", "acceleration"} {
		if !byName[n] {
			t.Errorf("no %q check", n)
		}
	}
}
