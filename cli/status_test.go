package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

func TestStatus(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	started := now.Add(-95 * time.Second)
	v := api.VM{
		Spec: vm.Spec{Name: "web1", Image: "debian-local", Arch: vm.AMD64, CPUs: 2, MemoryMiB: 2048, DiskBytes: 20 << 30,
			User: "fvm", Ports: []vm.PortForward{{HostPort: 8080, GuestPort: 80}}},
		State: vm.Running, Backend: "qemu", Accel: "tcg", SSHPort: 41235, StartedAt: &started, CreatedAt: now.Add(-time.Hour),
	}
	var b bytes.Buffer
	writeStatus(&b, v, now)
	for _, want := range []string{"web1: running (qemu, tcg) for 1m35s", "debian-local (amd64), 2 CPUs, 2G memory, 20G disk",
		"`fvm ssh web1` (fvm@127.0.0.1:41235)", "->80/tcp"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	v.State, v.Error = vm.Error, "hypervisor exited: boom"
	b.Reset()
	writeStatus(&b, v, now)
	if !strings.Contains(b.String(), "web1: error (qemu)\n") || !strings.Contains(b.String(), "fvm start web1") || !strings.Contains(b.String(), "boom") {
		t.Errorf("stopped status:\n%s", b.String())
	}
}

func TestSettingsFlags(t *testing.T) {
	s, err := createSpec(t, "debian-local", "--cpu", "3", "--memory", "1G", "--backend", "qemu")
	if err != nil || s.CPUs != 3 || s.MemoryMiB != 1024 || s.Backend != "qemu" || s.DiskBytes != vm.Defaults.DiskBytes {
		t.Fatalf("--cpu alias: %+v %v", s, err)
	}
	t.Setenv("FVM_CPUS", "4.5abc")
	if _, err := createSpec(t, "debian-local"); err == nil || !strings.Contains(err.Error(), "FVM_CPUS") {
		t.Fatalf("FVM_CPUS=4.5abc: %v", err)
	}
	t.Setenv("FVM_CPUS", "")
	// The original tool's forms: a bare number is GiB.
	if s, err := createSpec(t, "debian-local", "--memory", "4", "--disk", "20"); err != nil || s.MemoryMiB != 4<<10 || s.DiskBytes != 20<<30 {
		t.Fatalf("--memory 4 --disk 20: %+v %v", s, err)
	}
	if _, err := createSpec(t, "debian-local", "--memory", "4096"); err == nil || !strings.Contains(err.Error(), "4096M") {
		t.Fatalf("--memory 4096: %v", err)
	}
}
