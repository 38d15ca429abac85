package qemu

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

func TestDeviceSetFingerprint(t *testing.T) {
	a := baseConfig()
	b := baseConfig()
	// What is not part of the saved state may differ: names, paths, ports, the generation ID.
	b.Name, b.SSHPort, b.VMGenID, b.Incoming = "clone7", 50022, newUUID(), "fd:3"
	b.Disk, b.VarsFile, b.QMPSocket, b.PIDFile = "/other/disk.qcow2", "/other/efi-vars.fd", "/other/qmp.sock", "/other/qemu.pid"
	b.SerialSocket, b.SerialLog, b.VNCSocket = "/other/serial.sock", "/other/serial.log", "/other/vnc.sock"
	b.Ports = []vm.PortForward{{HostPort: 8080, GuestPort: 80}}
	if deviceSet(a) != deviceSet(b) {
		t.Fatal("names, paths and ports changed the device-set fingerprint")
	}
	for name, edit := range map[string]func(*Config){
		"cpus":    func(c *Config) { c.CPUs = 4 },
		"memory":  func(c *Config) { c.MemoryMiB = 4096 },
		"no seed": func(c *Config) { c.Seed = "" },
		"agent":   func(c *Config) { c.QGASocket = "/d/qga.sock" },
		"accel":   func(c *Config) { c.Accel = AccelKVM },
		"display": func(c *Config) { c.Display = false },
		"arch":    func(c *Config) { c.Arch = vm.ARM64 },
	} {
		c := baseConfig()
		edit(&c)
		if deviceSet(c) == deviceSet(a) {
			t.Errorf("%s did not change the device-set fingerprint", name)
		}
	}
	f := Fingerprint{QEMU: "7.2", Firmware: "aa", Devices: "bb"}
	if f.differs(f) != "" || !strings.Contains(f.differs(Fingerprint{QEMU: "8.0", Firmware: "aa", Devices: "bb"}), "QEMU changed") ||
		!strings.Contains(f.differs(Fingerprint{QEMU: "7.2", Firmware: "aa", Devices: "cc"}), "devices changed") {
		t.Error("differs does not name what changed")
	}
}

// TestSuspendResume drives save and restore against the fake QEMU: the state
// goes through a passed descriptor, is loaded once and then deleted; a state
// that cannot be loaded, or no longer fits, gives a cold boot with a notice.
func TestSuspendResume(t *testing.T) {
	d := fakeDriver(t, "ok")
	inst := readyInstance(t)
	reap(t, inst)
	ctx := context.Background()
	suspend := func() {
		t.Helper()
		m, err := d.Start(ctx, inst, driver.StartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.(driver.Suspender).Suspend(ctx); err != nil {
			t.Fatalf("suspend: %v", err)
		}
		select {
		case <-m.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("qemu still runs after suspend")
		}
		if !d.HasSavedState(inst) {
			t.Fatal("no saved state after suspend")
		}
	}

	suspend()
	b, _ := os.ReadFile(inst.Path(StateFile))
	if !strings.HasPrefix(string(b), fakeStateMagic) || !strings.Contains(string(b), "status paused") {
		t.Fatalf("state file %q: the guest must be stopped before it is saved", b)
	}
	var meta stateMeta
	if err := store.ReadJSON(inst.Path(StateMetaFile), &meta); err != nil || meta.Bytes != int64(len(b)) || meta.Fingerprint.QEMU == "" {
		t.Fatalf("state meta %+v %v", meta, err)
	}
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Info().Boot != driver.BootResumed {
		t.Fatalf("boot %q, want resumed", m.Info().Boot)
	}
	if st, err := m.State(ctx); err != nil || st != vm.Running {
		t.Fatalf("after resume: %s %v (the guest must be let run)", st, err)
	}
	if d.HasSavedState(inst) || exists(inst.Path(StateFile)) {
		t.Fatal("the state is still there after it was loaded: a second start would load it again")
	}
	m.Kill()

	// A state that cannot be loaded: cold boot, state gone, notice.
	suspend()
	os.WriteFile(inst.Path(StateFile), []byte("garbage"), 0o600)
	m, err = d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatalf("start with a corrupt state: %v", err)
	}
	if m.Info().Boot != driver.BootCold || !strings.Contains(m.Info().Notice, "could not be loaded") || !strings.Contains(m.Info().Notice, "booted cold") {
		t.Fatalf("corrupt state: %+v", m.Info())
	}
	if d.HasSavedState(inst) {
		t.Fatal("the corrupt state was kept")
	}
	m.Kill()

	// A state saved by another QEMU: discarded, cold boot, notice.
	suspend()
	store.ReadJSON(inst.Path(StateMetaFile), &meta)
	meta.Fingerprint.QEMU = "QEMU emulator version 6.0"
	store.WriteJSON(inst.Path(StateMetaFile), meta)
	m, err = d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Info().Boot != driver.BootCold || !strings.Contains(m.Info().Notice, "QEMU changed") {
		t.Fatalf("mismatched state: %+v", m.Info())
	}
	m.Kill()

	suspend()
	if err := d.DiscardState(inst); err != nil || d.HasSavedState(inst) {
		t.Fatalf("discard: %v", err)
	}
}
