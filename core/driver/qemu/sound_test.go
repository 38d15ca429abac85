package qemu

import (
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/vm"
)

func TestChooseAudioDev(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	pulse := func(p string) bool { return p == "/run/user/1000/pulse/native" }
	nothing := func(string) bool { return false }
	hasPA := func(d string) bool { return d == "pa" }
	for _, tc := range []struct {
		name, goos string
		env        map[string]string
		exists     func(string) bool
		has        func(string) bool
		want       string
	}{
		{"macOS", "darwin", nil, nothing, nothing, "coreaudio"},
		{"linux with pulse", "linux", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, pulse, hasPA, "pa"},
		{"pulse server but QEMU without pa", "linux", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, pulse, nothing, "none"},
		{"PULSE_SERVER", "linux", map[string]string{"PULSE_SERVER": "unix:/x"}, nothing, hasPA, "pa"},
		{"headless linux", "linux", nil, nothing, hasPA, "none"},
		{"override", "darwin", map[string]string{AudioDevEnv: "none"}, nothing, nothing, "none"},
		{"wav in the VM dir", "linux", map[string]string{AudioDevEnv: "wav"}, nothing, nothing, "wav,path=/v/a,,b/sound.wav"},
	} {
		if got := chooseAudioDev(tc.goos, "/v/a,b", env(tc.env), tc.exists, tc.has); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseAudioHelp(t *testing.T) {
	got := parseAudioHelp("Available audio drivers:\nnone\nalsa\ndbus\noss\nwav\n")
	for _, d := range []string{"none", "alsa", "wav"} {
		if !got[d] {
			t.Errorf("%s missing from %v", d, got)
		}
	}
	if got["pa"] || got["Available audio drivers:"] {
		t.Errorf("parsed %v", got)
	}
}

// TestGuestMAC: a VM's NIC address comes from its identity, stays for its
// life, differs between VMs and re-creations; templates and clones keep the
// snapshot's (QEMU's default), and a VM that ran before keeps its own.
func TestGuestMAC(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	s := &vm.Spec{Name: "web1", Created: t0}
	a := GuestMAC(s)
	if a != GuestMAC(&vm.Spec{Name: "web1", Created: t0}) || len(a) != 17 || a[:9] != "52:54:00:" || a == cloudinit.DefaultMAC {
		t.Errorf("GuestMAC = %q", a)
	}
	if a == GuestMAC(&vm.Spec{Name: "web2", Created: t0}) || a == GuestMAC(&vm.Spec{Name: "web1", Created: t0.Add(time.Second)}) {
		t.Error("two VMs share an address")
	}
	if got := GuestMAC(&vm.Spec{Name: "web1", Created: t0, Warm: "/warm/x"}); got != cloudinit.DefaultMAC {
		t.Errorf("clone: %s", got)
	}
	if got := GuestMAC(&vm.Spec{Name: cloudinit.TemplateHostname, Created: t0}); got != cloudinit.DefaultMAC {
		t.Errorf("template: %s", got)
	}
	if got := runMAC(s, runFacts{}); got != a {
		t.Errorf("first run: %s, want %s", got, a)
	}
	if got := runMAC(s, runFacts{QEMU: "/usr/bin/qemu-system-x86_64", MAC: "52:54:00:01:02:03"}); got != "52:54:00:01:02:03" {
		t.Errorf("later run: %s", got)
	}
	if got := runMAC(s, runFacts{QEMU: "/usr/bin/qemu-system-x86_64"}); got != cloudinit.DefaultMAC {
		t.Errorf("a VM from before per-VM addresses: %s", got)
	}
}
