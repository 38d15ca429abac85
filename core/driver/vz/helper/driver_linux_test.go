package helper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	vzd "github.com/fvmhq/fvm/core/driver/vz"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// These tests run the real vz driver against a real helper process: this
// test binary in fvm-vz's place (TestMain), with the real process shell,
// control socket and user-mode network, and fakeVM for the framework.

func newDriver(t *testing.T) *vzd.Driver {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeHelperEnv, "1")
	caps, _ := fakePlatform.probe()
	return vzd.New(vzd.Options{HelperPath: exe, MacOS: "14.5", Arch: vm.ARM64, Caps: &caps, StartTimeout: 20 * time.Second})
}

// newInstance makes a VM directory (short path: socket limits) with a spec
// and a small raw base image, as the host would before Create.
func newInstance(t *testing.T, name string) *store.Instance {
	t.Helper()
	root, err := os.MkdirTemp("", "vzd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	base := filepath.Join(root, "base.raw")
	b := make([]byte, 4<<20)
	b[510], b[511] = 0x55, 0xaa
	if err := os.WriteFile(base, b, 0o444); err != nil {
		t.Fatal(err)
	}
	s := specForTest()
	s.Name, s.BaseImage, s.DiskBytes = name, base, 1<<30
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	inst := &store.Instance{Dir: dir, Spec: *s}
	if err := inst.SaveSpec(); err != nil {
		t.Fatal(err)
	}
	return inst
}

// rawBase is the instance's base as the host hands it to Create.
func rawBase(inst *store.Instance) *driver.Base {
	return &driver.Base{Path: inst.Spec.BaseImage, Format: "raw", VirtualSize: 4 << 20}
}

func sshAnswer(t *testing.T, m driver.Machine) string {
	t.Helper()
	ep, err := m.SSHEndpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", ep.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, "SSH-2.0-test")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("ssh forward %s: %v", ep, err)
	}
	return strings.TrimSpace(line)
}

func waitDone(t *testing.T, m driver.Machine) error {
	t.Helper()
	select {
	case err := <-m.Done():
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the helper did not end")
		return nil
	}
}

func state(t *testing.T, m driver.Machine) vm.State {
	t.Helper()
	st, err := m.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func gone(t *testing.T, inst *store.Instance) {
	t.Helper()
	for _, f := range []string{vzd.PIDFile, vzd.ControlSocket} {
		if _, err := os.Stat(inst.Path(f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after the VM ended (%v)", f, err)
		}
	}
}

// TestDriverLifecycle: create, start, SSH through the forward, re-adopt from
// a new host, show the window, suspend, resume, power off.
func TestDriverLifecycle(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	inst := newInstance(t, "web1")
	if err := d.Create(ctx, inst, driver.CreateInput{Base: rawBase(inst)}); err != nil {
		t.Fatal(err)
	}
	if bases, err := d.BasesInUse(inst.Dir); err != nil || len(bases) != 2 || bases[0] != inst.Spec.BaseImage {
		t.Fatalf("BasesInUse = %v %v: want the raw base (its own conversion) and the base", bases, err)
	}
	if st, _ := os.Stat(inst.Path(vzd.DiskFile)); st == nil || st.Size() != 1<<30 {
		t.Fatalf("disk %v: want 1 GiB", st)
	}

	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill() })
	if st := state(t, m); st != vm.Running || m.Info().Boot != driver.BootCold {
		t.Fatalf("state after start: %s, %+v", st, m.Info())
	}
	if n, err := m.(driver.NICReporter).NIC(ctx); err != nil || n.MAC != vzd.GuestMAC(&inst.Spec).String() || len(n.IPs) != 1 || n.IPs[0] != "192.168.127.2" || n.Source != "dhcp-lease" {
		t.Errorf("NIC = %+v, %v; want the VM's MAC and its leased 192.168.127.2", n, err)
	}
	if got := sshAnswer(t, m); got != "22:SSH-2.0-test" {
		t.Fatalf("through the SSH forward the guest answered %q", got)
	}
	pid := m.Info().PID
	if b, _ := os.ReadFile(inst.Path(vzd.PIDFile)); strings.TrimSpace(string(b)) != strconv.Itoa(pid) || m.Info().Accel != "vz" {
		t.Fatalf("pid file %q, machine %+v", b, m.Info())
	}
	if st, err := os.Stat(inst.Path(vzd.ControlSocket)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", st, err)
	}
	if _, err := d.Start(ctx, inst, driver.StartOptions{}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second start: %v", err)
	}

	// The host crashed: a new one re-adopts the running helper.
	d2 := newDriver(t)
	m2, err := d2.Attach(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Info().PID != pid || state(t, m2) != vm.Running {
		t.Fatalf("adopted %+v in state %s", m2.Info(), state(t, m2))
	}
	if got := sshAnswer(t, m2); got != "22:SSH-2.0-test" {
		t.Fatalf("after re-adoption the guest answered %q", got)
	}
	nd, ok := m2.(driver.NativeDisplay)
	if !ok {
		t.Fatal("a vz machine is a driver.NativeDisplay")
	}
	if err := nd.ShowWindow(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inst.Path(windowMarker)); err != nil {
		t.Fatalf("ShowWindow did not reach the helper's VM: %v", err)
	}

	// Suspend: the state is saved, the helper ends; Start resumes and drops the state.
	if err := m2.(driver.Suspender).Suspend(ctx); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, m2); err != nil {
		t.Fatalf("adopted machine after suspend: %v", err)
	}
	if err := waitDone(t, m); err != nil {
		t.Fatalf("first machine after suspend: %v", err)
	}
	gone(t, inst)
	if !d.HasSavedState(inst) {
		t.Fatal("no saved state after suspend")
	}
	m3, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if i := m3.Info(); i.Boot != driver.BootResumed || !i.ClockStale || d.HasSavedState(inst) {
		t.Fatalf("resume: %+v, saved state still there: %v", m3.Info(), d.HasSavedState(inst))
	}
	if got := sshAnswer(t, m3); got != "22:SSH-2.0-test" {
		t.Fatalf("after resume the guest answered %q", got)
	}

	// Power off: the guest stops, the helper exits cleanly and removes its files.
	if err := m3.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, m3); err != nil {
		t.Fatalf("clean power-off reported %v", err)
	}
	gone(t, inst)
	if _, err := d.Attach(ctx, inst); !errors.Is(err, driver.ErrNotRunning) {
		t.Fatalf("attach after power-off: %v", err)
	}
	if st, _ := m3.State(ctx); st != vm.Stopped {
		t.Fatalf("state after power-off: %s", st)
	}
}

// TestDriverKillAndDelete: Kill ends the helper (and so the VM), Delete
// leaves no process behind.
func TestDriverKillAndDelete(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	inst := newInstance(t, "kill1")
	if err := d.Create(ctx, inst, driver.CreateInput{Base: rawBase(inst)}); err != nil {
		t.Fatal(err)
	}
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := m.Info().PID
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("helper %d still alive after Kill", pid)
	}
	gone(t, inst)

	m, err = d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid = m.Info().PID
	d2 := newDriver(t) // a host that never started it
	if err := d2.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("helper %d still alive after Delete", pid)
	}
	gone(t, inst)
}

// TestDriverReadoptionChecks: a pid file alone proves nothing.
func TestDriverReadoptionChecks(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	inst := newInstance(t, "adopt1")
	if err := d.Create(ctx, inst, driver.CreateInput{Base: rawBase(inst)}); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	write := func(pid int) {
		os.WriteFile(inst.Path(vzd.PIDFile), []byte(strconv.Itoa(pid)+"\n"), 0o644)
		os.WriteFile(inst.Path(vzd.ControlSocket), nil, 0o600) // a stale socket file
	}
	facts := func(helper string) {
		f := map[string]string{"helper": helper}
		if err := store.WriteJSON(inst.Path(vzd.FactsFile), f); err != nil {
			t.Fatal(err)
		}
	}
	// Another process of the same executable (this test binary), not this VM's helper.
	facts(exe)
	write(os.Getpid())
	if _, err := d.Attach(ctx, inst); !errors.Is(err, driver.ErrNotRunning) {
		t.Fatalf("the same executable without this VM's dir: %v", err)
	}
	gone(t, inst)
	// A live process of another executable with the right arguments.
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleep.Process.Kill()
	write(sleep.Process.Pid)
	if _, err := d.Attach(ctx, inst); !errors.Is(err, driver.ErrNotRunning) {
		t.Fatalf("another executable: %v", err)
	}
	gone(t, inst)
	// A dead pid.
	write(1 << 22)
	if _, err := d.Attach(ctx, inst); !errors.Is(err, driver.ErrNotRunning) {
		t.Fatalf("a dead pid: %v", err)
	}
	gone(t, inst)

	// The real helper, whose control socket has gone missing: still adopted
	// (so it can be killed), with State saying what is wrong.
	facts("")
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	os.Remove(inst.Path(vzd.ControlSocket))
	m2, err := newDriver(t).Attach(ctx, inst)
	if err != nil {
		t.Fatalf("a live helper without its socket: %v", err)
	}
	if st, err := m2.State(ctx); st != vm.Error || err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("state of a helper that does not answer: %s %v", st, err)
	}
	if err := m2.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
}

// TestDriverStartFailures: a failed start names why and leaves nothing running.
func TestDriverStartFailures(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()

	inst := newInstance(t, "fail1")
	if err := d.Create(ctx, inst, driver.CreateInput{Base: rawBase(inst)}); err != nil {
		t.Fatal(err)
	}
	_, err := d.Start(ctx, inst, driver.StartOptions{})
	if err == nil || !strings.Contains(err.Error(), "fvm-vz: configure the VM: fake: this Mac refuses the configuration") {
		t.Fatalf("a configuration the framework refuses: %v", err)
	}
	gone(t, inst)

	inst = newInstance(t, "ports1")
	if err := d.Create(ctx, inst, driver.CreateInput{Base: rawBase(inst)}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	inst.Spec.Ports = []vm.PortForward{{HostPort: port, GuestPort: 80}}
	if _, err := d.Start(ctx, inst, driver.StartOptions{}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("host port 127.0.0.1:%d is already in use", port)) {
		t.Fatalf("busy -p port: %v", err)
	}
	gone(t, inst)

	os.Remove(inst.Path(vzd.DiskFile))
	inst.Spec.Ports = nil
	if _, err := d.Start(ctx, inst, driver.StartOptions{}); err == nil || !strings.Contains(err.Error(), "disk") {
		t.Fatalf("missing disk: %v", err)
	}

	// Saved state that does not restore: the error says how to boot afresh.
	inst = newInstance(t, "badstate")
	if err := d.Create(ctx, inst, driver.CreateInput{Base: rawBase(inst)}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(inst.Path(vzd.StateFile), []byte("garbage"), 0o600)
	if _, err := d.Start(ctx, inst, driver.StartOptions{}); err == nil || !strings.Contains(err.Error(), "--cold") {
		t.Fatalf("unrestorable state: %v", err)
	}
	gone(t, inst)
	if err := d.DiscardState(inst); err != nil || d.HasSavedState(inst) {
		t.Fatalf("discard: %v", err)
	}
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatalf("start after discarding the state: %v", err)
	}
	m.Kill()
	waitDone(t, m)
}

// TestHelperSignals: SIGTERM to the helper presses the power button; the
// guest powers off and the helper exits cleanly.
func TestHelperSignals(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	inst := newInstance(t, "sig1")
	if err := d.Create(ctx, inst, driver.CreateInput{Base: rawBase(inst)}); err != nil {
		t.Fatal(err)
	}
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(m.Info().PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, m); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	gone(t, inst)
	if b, _ := os.ReadFile(inst.Path(vzd.LogFile)); !strings.Contains(string(b), "asking the guest to power off") {
		t.Errorf("helper log does not say what SIGTERM did:\n%s", b)
	}
}
