package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// TestE2ESnapshotRealQEMU checks the snapshot design against a real QEMU (the
// firmware runs, no guest OS: the block layer and migration are what is
// tested): a live snapshot with memory (the migration pauses before
// switching over, the disk switches there, the guest runs on), a disk-only
// one, a restore of the memory into a new QEMU on a new top, a disk that is
// written after the snapshot but not seen by the restore, and a flattening
// by QEMU's block-stream to the base. FVM_E2E=1 (it burns CPU a while).
func TestE2ESnapshotRealQEMU(t *testing.T) {
	if os.Getenv("FVM_E2E") != "1" {
		t.Skip("set FVM_E2E=1 to run a real QEMU")
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
	inst := newInstance(t, base, 1<<30)
	inst.Spec.Accel, inst.Spec.MemoryMiB = "auto", 512
	d := New(Options{Log: testLog{t}, LayersDir: filepath.Join(t.TempDir(), "layers"), MaxLayers: 2})
	if err := d.Create(ctx, inst, driver.CreateInput{Base: baseOf(t, inst)}); err != nil {
		t.Fatal(err)
	}
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Kill() })
	time.Sleep(2 * time.Second) // the firmware dirties some memory

	dir := filepath.Join(t.TempDir(), "s1")
	os.Mkdir(dir, 0o700)
	t0 := time.Now()
	res, err := m.(driver.LiveSnapshotter).Snapshot(ctx, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURE live snapshot of a 512 MiB firmware guest: pause %s, whole %s", res.Pause, time.Since(t0))
	if !res.Memory || res.Pause <= 0 || res.Pause > 5*time.Second {
		t.Fatalf("result %+v", res)
	}
	if st, err := m.State(ctx); err != nil || st != vm.Running {
		t.Fatalf("after the snapshot: %s %v", st, err)
	}
	top := inst.Path(mustFacts(t, inst).topName())
	if err := qmpDo(ctx, pathsOf(inst).qmp, func(q *QMP) error {
		cur, err := queryTop(ctx, q)
		if err == nil && cur != top {
			t.Errorf("QEMU writes %s, the facts say %s", cur, top)
		}
		// A write after the snapshot: the restore must not see it. HMP's
		// qemu-io answers only its refusals (its own output goes to QEMU's
		// stdout); whether the data landed is read from the file.
		for _, cmd := range []string{`qemu-io disk0 "write -P 0x5a 0 64k"`, `qemu-io disk0 "flush"`} {
			if out, err := q.HMP(ctx, cmd); err != nil || strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s: %q %v", cmd, out, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := readPattern(top, 0x5a); err != nil {
		t.Fatalf("the write after the snapshot did not land in the top: %v", err)
	}

	dir2 := filepath.Join(t.TempDir(), "s2")
	os.Mkdir(dir2, 0o700)
	if res, err := m.(driver.LiveSnapshotter).Snapshot(ctx, dir2, false); err != nil || res.Memory {
		t.Fatalf("disk-only live snapshot: %+v %v", res, err)
	}
	// Two layers over the limit of 2? Not yet; one more makes three: a flattening starts.
	dir3 := filepath.Join(t.TempDir(), "s3")
	os.Mkdir(dir3, 0o700)
	if _, err := m.(driver.LiveSnapshotter).Snapshot(ctx, dir3, false); err != nil {
		t.Fatal(err)
	}
	top = inst.Path(mustFacts(t, inst).topName())
	for end := time.Now().Add(60 * time.Second); backingOf(top) != base; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the top still reads %s a minute after three snapshots with a limit of 2", backingOf(top))
		}
	}
	t.Log("flattened: the top reads the base directly")

	// Restore the first snapshot's memory in a new QEMU, on a new top.
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	<-m.Done()
	if err := d.Revert(ctx, inst, dir); err != nil {
		t.Fatal(err)
	}
	m2, err := d.Start(ctx, inst, driver.StartOptions{Clone: dir, Restore: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m2.Kill() })
	if m2.Info().Boot != driver.BootRestored || strings.Contains(m2.Info().Notice, "cold") { // a TCG note is fine
		t.Fatalf("restore: boot %q, notice %q", m2.Info().Boot, m2.Info().Notice)
	}
	if st, err := m2.State(ctx); err != nil || st != vm.Running {
		t.Fatalf("restored: %s %v", st, err)
	}
	// The restored disk, read through its whole chain: zeros where the write was.
	if err := readPattern(inst.Path(mustFacts(t, inst).topName()), 0); err != nil {
		t.Fatalf("the restored disk holds a write made after its snapshot: %v", err)
	}
	used, _ := d.BasesInUse(inst.Dir)
	t.Logf("chain after the restore: %v", used)
}

// readPattern checks that the disk image file (its whole backing chain) holds
// the byte pattern in its first 64 KiB, with qemu-io beside the QEMU that has
// it open (-U: shared, read-only).
func readPattern(file string, pattern byte) error {
	out, err := exec.Command("qemu-io", "-f", "qcow2", "-r", "-U", "-c", fmt.Sprintf("read -P 0x%02x 0 64k", pattern), file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "read 65536/65536") || strings.Contains(string(out), "verification failed") {
		return fmt.Errorf("qemu-io read -P 0x%02x of %s: %v: %s", pattern, file, err, out)
	}
	return nil
}

func mustFacts(t *testing.T, inst *store.Instance) runFacts {
	t.Helper()
	f, err := loadFacts(inst)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
