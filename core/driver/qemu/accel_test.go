package qemu

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/vm"
)

func mods(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func TestDetectAccel(t *testing.T) {
	tests := []struct {
		name      string
		probe     HostProbe
		want      string
		noticeHas string // "" means no notice
	}{
		{"intel", HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_intel")}, AccelKVM, ""},
		{"amd", HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_amd")}, AccelKVM, ""},
		{"pvm only", HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_pvm")}, AccelTCG, "kvm_pvm"},
		{"pvm beside intel", HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_pvm", "kvm_intel")}, AccelKVM, ""},
		{"no kvm device", HostProbe{OS: "linux", Arch: "amd64", KVMErr: fs.ErrNotExist, Modules: mods()}, AccelTCG, "KVM is unavailable"},
		{"kvm permission", HostProbe{OS: "linux", Arch: "amd64", KVMErr: fs.ErrPermission, Modules: mods("kvm_intel")}, AccelTCG, "permission denied"},
		{"unknown backing amd64", HostProbe{OS: "linux", Arch: "amd64", Modules: mods()}, AccelTCG, "unknown"},
		{"arm64 built-in kvm", HostProbe{OS: "linux", Arch: "arm64", Modules: mods()}, AccelKVM, ""},
		{"arm64 pvm", HostProbe{OS: "linux", Arch: "arm64", Modules: mods("kvm_pvm")}, AccelTCG, "kvm_pvm"},
		{"mac hvf", HostProbe{OS: "darwin", Arch: "arm64", HVF: true}, AccelHVF, ""},
		{"mac no hvf", HostProbe{OS: "darwin", Arch: "arm64"}, AccelTCG, "kern.hv_support"},
		{"other os", HostProbe{OS: "freebsd", Arch: "amd64"}, AccelTCG, "freebsd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, notice := DetectAccel(tt.probe)
			if got != tt.want {
				t.Errorf("accel = %q, want %q", got, tt.want)
			}
			if tt.noticeHas == "" && notice != "" {
				t.Errorf("unexpected notice %q", notice)
			}
			if !strings.Contains(notice, tt.noticeHas) {
				t.Errorf("notice %q lacks %q", notice, tt.noticeHas)
			}
			if strings.Contains(notice, "\n") {
				t.Errorf("notice is not one line: %q", notice)
			}
		})
	}
}

func TestResolveAccel(t *testing.T) {
	pvm := HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_pvm")}
	intel := HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_intel")}
	mac := HostProbe{OS: "darwin", Arch: "arm64", HVF: true}
	tests := []struct {
		name      string
		requested string
		guest     vm.Arch
		probe     HostProbe
		want      string
		errHas    string
	}{
		{"auto on pvm", "auto", vm.AMD64, pvm, AccelTCG, ""},
		{"empty is auto", "", vm.AMD64, intel, AccelKVM, ""},
		{"explicit tcg", "tcg", vm.AMD64, intel, AccelTCG, ""},
		{"explicit kvm", "kvm", vm.AMD64, intel, AccelKVM, ""},
		{"kvm on pvm", "kvm", vm.AMD64, pvm, "", "kvm_pvm"},
		{"kvm without device", "kvm", vm.AMD64, HostProbe{OS: "linux", Arch: "amd64", KVMErr: fs.ErrNotExist}, "", "unavailable"},
		{"kvm unknown backing is allowed", "kvm", vm.AMD64, HostProbe{OS: "linux", Arch: "amd64", Modules: mods()}, AccelKVM, ""},
		{"kvm cross arch", "kvm", vm.ARM64, intel, "", "arm64 guest"},
		{"auto cross arch", "auto", vm.ARM64, intel, AccelTCG, ""},
		{"hvf on linux", "hvf", vm.AMD64, intel, "", "darwin"},
		{"kvm on mac", "kvm", vm.ARM64, mac, "", "linux"},
		{"hvf on mac", "hvf", vm.ARM64, mac, AccelHVF, ""},
		{"hvf unavailable", "hvf", vm.ARM64, HostProbe{OS: "darwin", Arch: "arm64"}, "", "kern.hv_support"},
		{"auto on mac", "auto", vm.ARM64, mac, AccelHVF, ""},
		{"auto x86 guest on mac", "auto", vm.AMD64, mac, AccelTCG, ""},
		{"unknown", "xen", vm.AMD64, intel, "", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := ResolveAccel(tt.requested, tt.guest, tt.probe)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestAccelCheck(t *testing.T) {
	c := accelCheck(HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_pvm")}, vm.AMD64)
	if !c.OK || !strings.Contains(c.Detail, "kvm_pvm") || c.Fix != "" {
		t.Errorf("pvm check = %+v", c)
	}
	c = accelCheck(HostProbe{OS: "linux", Arch: "amd64", KVMErr: fs.ErrPermission}, vm.AMD64)
	if c.OK || !strings.Contains(c.Fix, "usermod") {
		t.Errorf("permission check = %+v", c)
	}
	c = accelCheck(HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_amd")}, vm.AMD64)
	if !c.OK || !strings.HasPrefix(c.Detail, "kvm") {
		t.Errorf("kvm check = %+v", c)
	}
}
