package qemu

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// fakeDriver runs the test binary as QEMU in the given mode (see fakeQEMU).
func fakeDriver(t *testing.T, mode string) *Driver {
	t.Helper()
	t.Setenv("FVM_FAKE_QEMU", mode)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{
		QEMUPath:     func(vm.Arch) (string, error) { return self, nil },
		FirmwareDirs: []string{fakeFirmware(t)},
		Probe:        func() HostProbe { return HostProbe{OS: "linux", Arch: "amd64", Modules: mods("kvm_pvm")} },
		StartTimeout: 5 * time.Second,
		CPUProbe:     func(context.Context, string, string) error { return nil },
	})
}

// readyInstance is an instance with a disk file, as Create would leave it.
func readyInstance(t *testing.T) *store.Instance {
	t.Helper()
	inst := newInstance(t, "", 2<<30)
	inst.Spec.Accel = "auto"
	os.WriteFile(inst.Path(DiskFile), []byte("disk"), 0o600)
	return inst
}

// reap kills whatever fake QEMU a test leaves behind.
func reap(t *testing.T, inst *store.Instance) {
	t.Cleanup(func() {
		if pid := proc.ReadPIDFile(inst.Path(PIDFile)); pid > 0 {
			self, _ := os.Executable()
			if isOurQEMU(pid, self, pathsOf(inst).pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

func assertNoLeftovers(t *testing.T, inst *store.Instance, pid int) {
	t.Helper()
	for _, f := range []string{PIDFile, QMPSocket, VNCSocket, SerialSocket} {
		if _, err := os.Stat(inst.Path(f)); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", f, err)
		}
	}
	if pid > 0 {
		self, _ := os.Executable()
		if isOurQEMU(pid, self, pathsOf(inst).pid) {
			t.Errorf("qemu pid %d still running", pid)
		}
	}
}

func waitDone(t *testing.T, m driver.Machine) error {
	t.Helper()
	select {
	case err := <-m.Done():
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not fire")
		return nil
	}
}

func TestStartAttachShutdown(t *testing.T) {
	d := fakeDriver(t, "ok")
	inst := readyInstance(t)
	reap(t, inst)
	ctx := context.Background()
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	qm := m.(*Machine)
	if st, err := m.State(ctx); err != nil || st != vm.Running {
		t.Fatalf("state = %s, %v", st, err)
	}
	rt, err := inst.LoadRuntime()
	if err != nil || rt.Accel != AccelTCG || rt.SSHPort == 0 {
		t.Fatalf("runtime = %+v, %v", rt, err)
	}
	if f, err := loadFacts(inst); err != nil || f.QEMU == "" {
		t.Fatalf("facts = %+v, %v", f, err)
	}
	ep, _ := m.SSHEndpoint(ctx)
	if ep != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(rt.SSHPort)) {
		t.Errorf("ssh endpoint %s, runtime port %d", ep, rt.SSHPort)
	}
	if proc.ReadPIDFile(inst.Path(PIDFile)) != qm.Info().PID {
		t.Errorf("pid file does not hold pid %d", qm.Info().PID)
	}
	if _, err := d.Start(ctx, inst, driver.StartOptions{}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second start: err = %v", err)
	}
	for _, sock := range []string{VNCSocket, SerialSocket} {
		if st, err := os.Stat(inst.Path(sock)); err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want a socket with mode 0600", sock, st.Mode(), err)
		}
	}
	img, err := qm.Screenshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2 || b.Dy() != 1 {
		t.Errorf("screenshot is %v, want 2x1", b)
	}
	if r, g, b, _ := img.At(0, 0).RGBA(); r>>8 != 0xff || g != 0 || b != 0 {
		t.Errorf("pixel (0,0) = %d,%d,%d, want red", r>>8, g>>8, b>>8)
	}
	if left, _ := filepath.Glob(inst.Path(ScreenDumps)); len(left) > 0 {
		t.Errorf("screen dumps left behind: %v", left)
	}

	// A new host (new driver, no memory of the first) re-adopts the VM.
	a, err := fakeDriver(t, "ok").Attach(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if a.Info().PID != qm.Info().PID {
		t.Errorf("adopted pid %d, started %d", a.Info().PID, qm.Info().PID)
	}
	if st, err := a.State(ctx); err != nil || st != vm.Running {
		t.Fatalf("adopted state = %s, %v", st, err)
	}
	if ep2, _ := a.SSHEndpoint(ctx); ep2 != ep {
		t.Errorf("adopted ssh endpoint %s, want %s", ep2, ep)
	}

	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, a); err != nil {
		t.Errorf("adopted Done: %v", err)
	}
	if err := waitDone(t, m); err != nil {
		t.Errorf("Done after a clean power-off: %v", err)
	}
	if st, _ := m.State(ctx); st != vm.Stopped {
		t.Errorf("state after shutdown = %s", st)
	}
	assertNoLeftovers(t, inst, qm.Info().PID)
	if _, err := d.Attach(ctx, inst); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("attach after shutdown: err = %v", err)
	}
}

func TestStartKill(t *testing.T) {
	d := fakeDriver(t, "ok")
	inst := readyInstance(t)
	reap(t, inst)
	m, err := d.Start(context.Background(), inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := m.Info().PID
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, m); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Done after kill = %v", err)
	}
	assertNoLeftovers(t, inst, pid)
	if err := m.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
}

func TestStartFailureReportsQEMUError(t *testing.T) {
	d := fakeDriver(t, "fail")
	inst := readyInstance(t)
	_, err := d.Start(context.Background(), inst, driver.StartOptions{})
	if err == nil || !strings.Contains(err.Error(), "Could not set up host forwarding rule") {
		t.Fatalf("err = %v, want QEMU's own message", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	assertNoLeftovers(t, inst, 0)
}

func TestStartTimeoutKills(t *testing.T) {
	d := fakeDriver(t, "mute")
	d.opts.StartTimeout = 700 * time.Millisecond
	inst := readyInstance(t)
	reap(t, inst)
	_, err := d.Start(context.Background(), inst, driver.StartOptions{})
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("err = %v", err)
	}
	assertNoLeftovers(t, inst, 0)
}

func TestStartCanceled(t *testing.T) {
	d := fakeDriver(t, "mute")
	inst := readyInstance(t)
	reap(t, inst)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := d.Start(ctx, inst, driver.StartOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	assertNoLeftovers(t, inst, 0)
}

func TestStartPortConflict(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	d := fakeDriver(t, "ok")
	inst := readyInstance(t)
	reap(t, inst)
	inst.Spec.Ports = []vm.PortForward{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: port, GuestPort: 80}}
	_, err = d.Start(context.Background(), inst, driver.StartOptions{})
	want := "host port 127.0.0.1:" + itoa(int64(port)) + " is already in use"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	assertNoLeftovers(t, inst, 0)
}

func TestStartWithoutDisk(t *testing.T) {
	inst := newInstance(t, "", 2<<30)
	_, err := fakeDriver(t, "ok").Start(context.Background(), inst, driver.StartOptions{})
	if err == nil || !strings.Contains(err.Error(), "disk") {
		t.Fatalf("err = %v", err)
	}
}

func TestStartExplicitKVMOnPVM(t *testing.T) {
	inst := readyInstance(t)
	inst.Spec.Accel = "kvm"
	_, err := fakeDriver(t, "ok").Start(context.Background(), inst, driver.StartOptions{})
	if err == nil || !strings.Contains(err.Error(), "kvm_pvm") {
		t.Fatalf("err = %v", err)
	}
}

// TestAttachDistrustsPIDFile: a pid file naming a live process that is not this
// VM's QEMU (here: the test itself) must not be adopted, and stale files go.
func TestAttachDistrustsPIDFile(t *testing.T) {
	d := fakeDriver(t, "ok")
	inst := readyInstance(t)
	self, _ := os.Executable()
	inst.SaveRuntime(store.Runtime{SSHPort: 2222, Accel: "tcg"})
	saveFacts(inst, runFacts{QEMU: self})
	os.WriteFile(inst.Path(PIDFile), []byte(itoa(int64(os.Getpid()))+"\n"), 0o644)
	os.WriteFile(inst.Path(QMPSocket), nil, 0o600)
	if _, err := d.Attach(context.Background(), inst); !errors.Is(err, driver.ErrNotRunning) {
		t.Fatalf("err = %v, want ErrNotRunning", err)
	}
	assertNoLeftovers(t, inst, 0)

	// A dead pid is no better.
	os.WriteFile(inst.Path(PIDFile), []byte("999999999\n"), 0o644)
	if _, err := d.Attach(context.Background(), inst); !errors.Is(err, driver.ErrNotRunning) {
		t.Fatalf("dead pid: err = %v", err)
	}
	assertNoLeftovers(t, inst, 0)

	// No pid file at all.
	if _, err := d.Attach(context.Background(), readyInstance(t)); !errors.Is(err, driver.ErrNotRunning) {
		t.Fatalf("no pid file: err = %v", err)
	}
}

func TestDeleteKillsAdopted(t *testing.T) {
	d := fakeDriver(t, "ok")
	inst := readyInstance(t)
	reap(t, inst)
	m, err := d.Start(context.Background(), inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := m.Info().PID
	if err := fakeDriver(t, "ok").Delete(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
	assertNoLeftovers(t, inst, pid)
}

// TestAttachLegacyLayout: a QEMU started by an fvm from before drivers had
// files of their own (its executable recorded in runtime.json, no qemu.json)
// is still recognised and re-adopted after the upgrade.
func TestAttachLegacyLayout(t *testing.T) {
	d := fakeDriver(t, "ok")
	inst := readyInstance(t)
	reap(t, inst)
	ctx := context.Background()
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	facts, _ := loadFacts(inst)
	rt, _ := inst.LoadRuntime()
	// Rewrite the directory as the earlier release wrote it.
	legacy := map[string]any{"sshPort": rt.SSHPort, "accel": rt.Accel, "qemu": facts.QEMU, "startedAt": rt.StartedAt}
	if err := store.WriteJSON(inst.Path(store.RuntimeFile), legacy); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(inst.Path(FactsFile)); err != nil {
		t.Fatal(err)
	}
	a, err := fakeDriver(t, "ok").Attach(ctx, inst)
	if err != nil {
		t.Fatalf("legacy layout not re-adopted: %v", err)
	}
	if a.Info().PID != m.Info().PID || a.Info().Accel != rt.Accel {
		t.Fatalf("adopted %+v, started %+v", a.Info(), m.Info())
	}
	if ep, err := a.SSHEndpoint(ctx); err != nil || int(ep.Port()) != rt.SSHPort {
		t.Fatalf("ssh endpoint %v %v, want port %d", ep, err, rt.SSHPort)
	}
	if st, err := a.State(ctx); err != nil || st != vm.Running {
		t.Fatalf("adopted state = %s, %v", st, err)
	}
}

// TestFrozenMachineMoves: a spare clone's QEMU is frozen and thawed, and its
// directory renamed while it runs (handed over under a VM's name) is found
// again by a new host's Attach and Delete: its command line keeps the old
// pid file path, which its facts record.
func TestFrozenMachineMoves(t *testing.T) {
	d := fakeDriver(t, "ok")
	inst := readyInstance(t)
	ctx := context.Background()
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := m.Info().PID
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	f, ok := m.(driver.Freezer)
	if !ok {
		t.Fatal("a qemu machine is no driver.Freezer")
	}
	if err := f.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		var st string
		qmpDo(ctx, m.(*Machine).p.qmp, func(q *QMP) (err error) { st, err = q.QueryStatus(ctx); return err })
		return st
	}
	if st := status(); st != "paused" {
		t.Errorf("frozen, its status is %q", st)
	}
	if err := f.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != "running" {
		t.Errorf("thawed, its status is %q", st)
	}
	moved := &store.Instance{Dir: filepath.Join(filepath.Dir(inst.Dir), "moved"), Spec: inst.Spec}
	if err := os.Rename(inst.Dir, moved.Dir); err != nil {
		t.Fatal(err)
	}
	if err := f.Moved(inst.Dir, moved.Dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(inst.Dir, DiskFile)); err != nil || string(b) != "disk" {
		t.Errorf("the disk by the path QEMU was given: %q, %v", b, err)
	}
	a, err := fakeDriver(t, "ok").Attach(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	if a.Info().PID != pid {
		t.Errorf("adopted pid %d, started %d", a.Info().PID, pid)
	}
	if st, err := a.State(ctx); err != nil || st != vm.Running {
		t.Errorf("adopted at its new path: %s, %v", st, err)
	}
	if err := fakeDriver(t, "ok").Delete(ctx, moved); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
	if _, err := os.Lstat(inst.Dir); !os.IsNotExist(err) {
		t.Errorf("the link at the old path outlived QEMU: %v", err)
	}
	if _, err := fakeDriver(t, "ok").Attach(ctx, moved); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("after Delete: %v, want ErrNotRunning", err)
	}
}
