package qemu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/vm"
)

func TestChecks(t *testing.T) {
	d := New(Options{Probe: func() HostProbe { return HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_pvm")} }})
	checks := d.Checks(context.Background())
	byName := map[string]driver.Check{}
	for _, c := range checks {
		t.Logf("%-26s ok=%-5v %s  %s", c.Name, c.OK, c.Detail, c.Fix)
		byName[c.Name] = c
		if !c.OK && c.Fix == "" {
			t.Errorf("%s fails without a fix", c.Name)
		}
	}
	for _, n := range []string{"qemu-system-x86_64", "qemu-system-aarch64", "UEFI firmware amd64", "UEFI firmware arm64", "qemu-img", "acceleration amd64"} {
		if _, ok := byName[n]; !ok {
			t.Errorf("no %q check", n)
		}
	}
	if c, ok := byName["qemu-system-aarch64"]; ok && !strings.Contains(c.Detail, "not installed") {
		if a := byName["acceleration arm64"]; !strings.Contains(a.Detail, "arm64 guests on an amd64 host") {
			t.Errorf("qemu-system-aarch64 is installed, yet no arm64 acceleration line: %+v", a)
		}
	}
}

// With both emulators, each arch gets its acceleration line: native from the host
// probe, foreign always TCG, with the pointer-authentication shortcut named.
func TestChecksForeignArch(t *testing.T) {
	fw := fakeFirmware(t)
	for i, probeErr := range []error{nil, errors.New("no such property")} {
		// A binary of its own each round: probe answers are cached per binary.
		self := fakeBin(t, fmt.Sprintf("#!/bin/sh\necho 'QEMU emulator version 7.2.%d (fake)'\n", i))
		d := New(Options{
			QEMUPath:     func(vm.Arch) (string, error) { return self, nil },
			FirmwareDirs: []string{fw},
			Probe:        func() HostProbe { return HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_intel")} },
			CPUProbe:     func(context.Context, string, string) error { return probeErr },
		})
		got := map[string]driver.Check{}
		for _, c := range d.Checks(context.Background()) {
			got[c.Name] = c
		}
		if c := got["acceleration amd64"]; !strings.HasPrefix(c.Detail, "kvm") {
			t.Errorf("native: %+v", c)
		}
		want := "pauth-impdef=on"
		if probeErr != nil {
			want = "emulated in full"
		}
		if c := got["acceleration arm64"]; !c.OK || !strings.HasPrefix(c.Detail, "tcg") || !strings.Contains(c.Detail, want) {
			t.Errorf("foreign (probe %v): %+v", probeErr, c)
		}
	}
}
