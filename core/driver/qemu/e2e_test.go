package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// TestE2ERealQEMU starts a real qemu-system-x86_64 on a blank disk (the firmware
// finds nothing to boot, which is fine: only QEMU's lifecycle is under test),
// re-adopts it from a fresh driver as a restarted host would, then stops it.
// It burns CPU for a few seconds, so it runs only with FVM_E2E=1.
func TestE2ERealQEMU(t *testing.T) {
	if os.Getenv("FVM_E2E") != "1" {
		t.Skip("set FVM_E2E=1 to boot a real QEMU")
	}
	needQEMUImg(t)
	qemuPath, err := DefaultQEMUPath(vm.AMD64)
	if err != nil {
		t.Skip(err)
	}
	if _, err := FindFirmware(vm.AMD64, qemuPath, nil); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	base := filepath.Join(t.TempDir(), "blank.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", base, "1G")
	inst := newInstance(t, base, 2<<30)
	inst.Spec.Accel = "auto"
	d := New(Options{Log: testLog{t}})
	if err := d.Validate(ctx, &inst.Spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, inst, driver.CreateInput{Base: baseOf(t, inst)}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := m.Info().PID
	t.Cleanup(func() { m.Kill() })
	t.Logf("QMP answered %s after launch (pid %d, accel %s)", time.Since(t0), pid, m.Info().Accel)
	if st, err := m.State(ctx); err != nil || st != vm.Running {
		t.Fatalf("state = %s, %v", st, err)
	}

	// The host "dies": a new driver with no memory of m re-adopts the VM.
	a, err := New(Options{}).Attach(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := a.State(ctx); err != nil || st != vm.Running || a.Info().PID != pid {
		t.Fatalf("adopted: state = %s, %v, pid %d want %d", st, err, a.Info().PID, pid)
	}
	if err := a.Shutdown(ctx); err != nil { // the firmware ignores it; the request must still go through
		t.Fatal(err)
	}
	if st, _ := a.State(ctx); st != vm.Stopping && st != vm.Stopped {
		t.Errorf("state after Shutdown = %s", st)
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the starting host's Machine did not see the kill")
	}
	assertNoLeftovers(t, inst, pid)
	if _, err := d.Attach(ctx, inst); !errors.Is(err, driver.ErrNotRunning) {
		t.Errorf("attach after kill: %v", err)
	}
	if b, _ := os.ReadFile(inst.Path(store.SerialLog)); len(b) == 0 {
		t.Log("serial log is empty (firmware printed nothing yet)")
	}
}

// TestE2EHostKilled starts the VM from a separate host process, kills that
// process with SIGKILL, and checks that QEMU lives on and is re-adopted.
func TestE2EHostKilled(t *testing.T) {
	if os.Getenv("FVM_E2E") != "1" {
		t.Skip("set FVM_E2E=1 to boot a real QEMU")
	}
	needQEMUImg(t)
	if _, err := DefaultQEMUPath(vm.AMD64); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	base := filepath.Join(t.TempDir(), "blank.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", base, "1G")
	inst := newInstance(t, base, 2<<30)
	if err := inst.SaveSpec(); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	host := exec.Command(self)
	host.Env = append(os.Environ(), "FVM_E2E_HOST="+inst.Dir)
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	host.Stderr = os.Stderr
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "started ") {
		host.Process.Kill()
		t.Fatalf("host said %q, %v", line, err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "started ")))
	host.Process.Signal(syscall.SIGKILL)
	host.Wait()
	rt, _ := loadFacts(inst)
	if !isOurQEMU(pid, rt.QEMU, pathsOf(inst).pid) {
		t.Fatalf("qemu pid %d died with its host", pid)
	}
	m, err := New(Options{}).Attach(ctx, inst)
	if err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal(err)
	}
	defer m.Kill()
	if st, err := m.State(ctx); err != nil || st != vm.Running {
		t.Fatalf("state = %s, %v", st, err)
	}
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	assertNoLeftovers(t, inst, pid)
}

// e2eHost is the host process of TestE2EHostKilled: start the VM, say so, wait to be killed.
func e2eHost(dir string) int {
	inst := &store.Instance{Dir: dir}
	if err := store.ReadJSON(inst.Path(store.SpecFile), &inst.Spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	d := New(Options{})
	base, err := hostBase(inst.Spec.BaseImage)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := d.Create(context.Background(), inst, driver.CreateInput{Base: base}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m, err := d.Start(context.Background(), inst, driver.StartOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("started %d\n", m.Info().PID)
	select {}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) { l.t.Logf("%s", b); return len(b), nil }
