package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// The probe against the real qemu-system-aarch64: the property this QEMU has
// starts, a made-up one does not. QEMU runs paused for a fraction of a second.
func TestProbeCPURealQEMU(t *testing.T) {
	bin, err := DefaultQEMUPath(vm.ARM64)
	if err != nil {
		t.Skip(err)
	}
	if err := probeCPU(context.Background(), bin, "max"); err != nil {
		t.Fatalf("-cpu max: %v", err)
	}
	err = probeCPU(context.Background(), bin, "max,fvm-no-such-prop=on")
	if err == nil || !strings.Contains(err.Error(), "fvm-no-such-prop") {
		t.Fatalf("a made-up CPU property: %v, want QEMU's complaint", err)
	}
	t.Logf("%s with %s: %v", bin, pauthImpdefProp, probeCPU(context.Background(), bin, "max,"+pauthImpdefProp))
}

// fakeBin is a file standing in for a QEMU binary: the probe cache keys on its
// path, size and mtime.
func fakeBin(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qemu-system-aarch64")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPauthImpdefProbedOncePerBinary(t *testing.T) {
	var calls atomic.Int32
	answer := error(nil)
	d := New(Options{CPUProbe: func(_ context.Context, _, cpu string) error {
		calls.Add(1)
		if cpu != "max,pauth-impdef=on" {
			t.Errorf("probed -cpu %s", cpu)
		}
		return answer
	}})
	has := fakeBin(t, "new qemu")
	for i := 0; i < 3; i++ {
		if !d.hasPauthImpdef(context.Background(), has) {
			t.Fatal("a QEMU that starts with the property is said not to have it")
		}
	}
	if calls.Load() != 1 {
		t.Errorf("probed %d times, want once", calls.Load())
	}
	answer = errors.New("exit status 1: Property 'max-arm-cpu.pauth-impdef' not found")
	old := fakeBin(t, "old qemu")
	for i := 0; i < 2; i++ {
		if d.hasPauthImpdef(context.Background(), old) {
			t.Error("a QEMU that refuses the property is said to have it")
		}
	}
	if calls.Load() != 2 {
		t.Errorf("probed %d times in all, want once per binary", calls.Load())
	}
	if d.hasPauthImpdef(context.Background(), filepath.Join(t.TempDir(), "missing")) {
		t.Error("a missing binary has it")
	}
}

// The driver's config: pauth-impdef for arm64 under TCG where QEMU has it, never
// for KVM/HVF or x86; and no warm snapshots for arm64 (no vmgenid).
func TestConfigPerArch(t *testing.T) {
	bin := fakeBin(t, "qemu")
	fw := fakeFirmware(t)
	for _, n := range []string{"AAVMF_CODE.fd", "AAVMF_VARS.fd"} {
		os.WriteFile(filepath.Join(fw, n), []byte("fw"), 0o644)
	}
	probeOK := true
	d := New(Options{
		QEMUPath:     func(vm.Arch) (string, error) { return bin, nil },
		FirmwareDirs: []string{fw},
		Probe:        func() HostProbe { return HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_intel")} },
		CPUProbe: func(context.Context, string, string) error {
			if probeOK {
				return nil
			}
			return errors.New("no such property")
		},
	})
	p := pathsOf(&store.Instance{Dir: "/vm"})
	ctx := context.Background()
	arm := &vm.Spec{Name: "a", Arch: vm.ARM64, Accel: "auto", CPUs: 2, MemoryMiB: 2048}
	cfg, _, notice, err := d.config(ctx, arm, p, true, "")
	if err != nil || cfg.Accel != AccelTCG || !cfg.PauthImpdef || !strings.Contains(notice, "arm64 guest on an amd64 host") {
		t.Fatalf("arm64 on amd64: %+v, %q, %v", cfg, notice, err)
	}
	if !strings.HasSuffix(cfg.Firmware.Code, "AAVMF_CODE.fd") {
		t.Errorf("arm64 firmware %s", cfg.Firmware.Code)
	}
	if args := strings.Join(BuildArgs(cfg), " "); !strings.Contains(args, "-cpu max,pauth-impdef=on") || !strings.Contains(args, "-machine virt,gic-version=max") {
		t.Errorf("arm64 argv: %s", args)
	}
	x86 := &vm.Spec{Name: "x", Arch: vm.AMD64, Accel: "auto", CPUs: 2, MemoryMiB: 2048}
	if cfg, _, _, err := d.config(ctx, x86, p, true, ""); err != nil || cfg.PauthImpdef || cfg.Accel != AccelKVM {
		t.Errorf("x86 on a KVM host: %+v, %v", cfg, err)
	}
	probeOK = false
	d2 := &Driver{opts: d.opts}
	d2.opts.QEMUPath = func(vm.Arch) (string, error) { return fakeBin(t, "older qemu"), nil }
	if cfg, _, _, err := d2.config(ctx, arm, p, true, ""); err != nil || cfg.PauthImpdef {
		t.Errorf("arm64 with a QEMU without the property: %+v, %v", cfg, err)
	}

	if c := d.Caps(ctx, arm); c.WarmClone || !strings.Contains(c.Why[driver.CapWarmClone], "VM generation ID") {
		t.Errorf("Caps(arm64) = %+v, want no warm clones with the reason", c)
	}
}
