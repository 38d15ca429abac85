package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// layeredVM is a created VM (a qcow2 overlay on a qcow2 base, real
// qemu-img) whose driver keeps layers in a directory of the test's.
func layeredVM(t *testing.T, d *Driver) (*store.Instance, string) {
	t.Helper()
	needQEMUImg(t)
	base := filepath.Join(t.TempDir(), "base.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", base, "1G")
	inst := newInstance(t, base, 1<<30)
	d.opts.LayersDir = filepath.Join(t.TempDir(), "layers")
	if err := d.Create(context.Background(), inst, driver.CreateInput{Base: baseOf(t, inst)}); err != nil {
		t.Fatal(err)
	}
	return inst, base
}

func snapDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "snap")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func topOf(t *testing.T, inst *store.Instance) string {
	t.Helper()
	f, err := loadFacts(inst)
	if err != nil {
		t.Fatal(err)
	}
	return inst.Path(f.topName())
}

// TestSnapshotStopped: a stopped VM's snapshot freezes its disk in place as a
// layer (the same file, under a second name), the VM goes on on a new top;
// BasesInUse lists the whole chain and the snapshots'; a revert makes a new
// top on an older layer; prune keeps what anything reads.
func TestSnapshotStopped(t *testing.T) {
	d := testDriver(t)
	inst, base := layeredVM(t, d)
	ctx := context.Background()
	old := inst.Path(DiskFile)
	st0, _ := os.Stat(old)

	s1 := snapDir(t)
	res, err := d.Snapshot(ctx, inst, s1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Memory || res.Pause != 0 {
		t.Errorf("a stopped VM's snapshot: %+v", res)
	}
	l1, err := frozenDisk(s1)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(l1); !os.SameFile(st, st0) || st.Mode().Perm() != 0o400 || filepath.Dir(l1) != d.opts.LayersDir {
		t.Fatalf("the layer %s is not the old disk frozen in place, read-only, in the layers dir (%v)", l1, st.Mode())
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old top's name is still there: %v", err)
	}
	top1 := topOf(t, inst)
	if backingOf(top1) != l1 || info(t, top1).VirtualSize != 1<<30 {
		t.Fatalf("new top %s: %+v", top1, info(t, top1))
	}
	if b, _ := os.ReadFile(filepath.Join(s1, store.EFIVarsFile)); string(b) != "vars-template" {
		t.Errorf("the snapshot's variables: %q", b)
	}

	s2 := snapDir(t)
	if _, err := d.Snapshot(ctx, inst, s2); err != nil {
		t.Fatal(err)
	}
	l2, _ := frozenDisk(s2)
	used, err := d.BasesInUse(inst.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(used, " ") != strings.Join([]string{l2, l1, base}, " ") {
		t.Fatalf("BasesInUse %v, want the chain %v", used, []string{l2, l1, base})
	}

	// Revert to the first: a new top on l1; l2 stays while its snapshot names it.
	os.MkdirAll(filepath.Join(inst.Dir, store.SnapshotsDir), 0o700)
	os.Rename(s2, filepath.Join(inst.Dir, store.SnapshotsDir, "two"))
	if err := d.Revert(ctx, inst, s1); err != nil {
		t.Fatal(err)
	}
	top2 := topOf(t, inst)
	if top2 == top1 || backingOf(top2) != l1 {
		t.Fatalf("after revert: top %s on %s", top2, backingOf(top2))
	}
	if _, err := os.Stat(top1); !os.IsNotExist(err) {
		t.Error("the discarded top is still there")
	}
	usedBy := func() (map[string]bool, error) {
		m := map[string]bool{}
		ps, err := d.BasesInUse(inst.Dir)
		for _, p := range ps {
			m[p] = true
		}
		return m, err
	}
	if removed, _, err := d.PruneLayers(usedBy); err != nil || len(removed) != 0 {
		t.Fatalf("prune removed %v (%v) while a snapshot names each layer", removed, err)
	}
	os.RemoveAll(filepath.Join(inst.Dir, store.SnapshotsDir))
	removed, _, err := d.PruneLayers(usedBy)
	if err != nil || len(removed) != 1 || removed[0] != l2 {
		t.Fatalf("prune after the snapshot went: removed %v (%v), want %s", removed, err, l2)
	}
}

// TestSnapshotCrashRecovery: a switch interrupted at each step resolves on
// the next start (settle): back while the new top was not made, forward once
// it was; the chain always resolves and no stray file stays.
func TestSnapshotCrashRecovery(t *testing.T) {
	ctx := context.Background()
	t.Run("before-the-new-top", func(t *testing.T) {
		d := testDriver(t)
		inst, base := layeredVM(t, d)
		f, _ := loadFacts(inst)
		n, err := d.beginSwitch(ctx, inst, f)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(inst.Path(n.Top)) // the crash came before it was made
		if err := settle(inst, ""); err != nil {
			t.Fatal(err)
		}
		if got := topOf(t, inst); got != inst.Path(DiskFile) || backingOf(got) != base {
			t.Fatalf("after undo: top %s on %s", got, backingOf(got))
		}
		if _, err := os.Stat(n.Layer); !os.IsNotExist(err) {
			t.Error("the layer's name stayed after an undo")
		}
	})
	t.Run("after-the-new-top", func(t *testing.T) {
		d := testDriver(t)
		inst, base := layeredVM(t, d)
		f, _ := loadFacts(inst)
		n, err := d.beginSwitch(ctx, inst, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := settle(inst, ""); err != nil {
			t.Fatal(err)
		}
		got := topOf(t, inst)
		if got != inst.Path(n.Top) || backingOf(got) != n.Layer || backingOf(n.Layer) != base {
			t.Fatalf("after redo: top %s on %s", got, backingOf(got))
		}
		if _, err := os.Stat(inst.Path(DiskFile)); !os.IsNotExist(err) {
			t.Error("the old top's name stayed")
		}
		f, _ = loadFacts(inst)
		if f.Next != nil {
			t.Error("the journal stayed")
		}
	})
	t.Run("running-not-switched", func(t *testing.T) {
		d := testDriver(t)
		inst, _ := layeredVM(t, d)
		f, _ := loadFacts(inst)
		n, _ := d.beginSwitch(ctx, inst, f)
		if err := settle(inst, inst.Path(DiskFile)); err != nil { // QEMU still writes the old top
			t.Fatal(err)
		}
		if topOf(t, inst) != inst.Path(DiskFile) {
			t.Fatal("a running QEMU's top was switched in the records only")
		}
		for _, p := range []string{inst.Path(n.Top), n.Layer} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("%s stayed", p)
			}
		}
	})
}

// TestSnapshotLive drives a running VM's snapshot against the fake QEMU: the
// disk switches while the migration waits before switching over (the saved
// state names the new top), the guest runs on, the facts follow; a switch
// QEMU refuses leaves the VM as it was.
func TestSnapshotLive(t *testing.T) {
	d := fakeDriver(t, "ok")
	inst, _ := layeredVM(t, d)
	inst.Spec.Accel = "auto"
	reap(t, inst)
	ctx := context.Background()
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	// The kernel of its direct boot, as its last cold boot left it.
	kernel, initrd := kernelBootFiles(inst.Dir)
	os.WriteFile(kernel, []byte("vmlinuz"), 0o600)
	os.WriteFile(initrd, []byte("initrd"), 0o600)
	dir := snapDir(t)
	res, err := m.(driver.LiveSnapshotter).Snapshot(ctx, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	top := topOf(t, inst)
	// A clone restores with the kernel the memory runs, linked, not read out of the disk.
	sk, si := kernelBootFiles(dir)
	for _, f := range [][2]string{{kernel, sk}, {initrd, si}} {
		a, _ := os.Stat(f[0])
		if b, err := os.Stat(f[1]); err != nil || !os.SameFile(a, b) {
			t.Errorf("the snapshot's %s is no link to the VM's %s: %v", f[1], f[0], err)
		}
	}
	if !res.Memory || res.Fingerprint == "" || res.Pause <= 0 || res.Pause > 5*time.Second {
		t.Errorf("result %+v", res)
	}
	b, _ := os.ReadFile(filepath.Join(dir, StateFile))
	if !strings.Contains(string(b), "disk "+top) {
		t.Fatalf("the state was saved before the disk switched to %s: %q", top, b)
	}
	if !d.HasSavedState(&store.Instance{Dir: dir}) {
		t.Fatal("the snapshot's state does not count (state.json)")
	}
	if st, _ := m.State(ctx); st != "running" {
		t.Fatalf("after the snapshot the VM is %s", st)
	}
	layer, _ := frozenDisk(dir)
	if backingOf(top) != layer {
		t.Fatalf("top %s reads %s, want the layer %s", top, backingOf(top), layer)
	}
	// A clone of it runs with the VM's NIC, which its memory and its guest's
	// network config have (mac.go).
	if f, _ := loadFacts(inst); f.MAC == "" || f.MAC == cloudinit.DefaultMAC || GuestMAC(&vm.Spec{Name: "fork1", Warm: dir}) != f.MAC {
		t.Fatalf("a clone's NIC %s, the VM's %s", GuestMAC(&vm.Spec{Name: "fork1", Warm: dir}), f.MAC)
	}

	t.Run("disk-only", func(t *testing.T) {
		dir := snapDir(t)
		res, err := m.(driver.LiveSnapshotter).Snapshot(ctx, dir, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Memory || !strings.Contains(res.Notice, "could not be frozen") || d.HasSavedState(&store.Instance{Dir: dir}) {
			t.Errorf("a disk-only snapshot without a guest agent: %+v", res)
		}
		if k, _ := kernelBootFiles(dir); isFile(k) {
			t.Errorf("a disk-only snapshot has the running kernel %s: its clones boot their disk's", k)
		}
		if got := GuestMAC(&vm.Spec{Name: "fork2", Warm: dir}); got != cloudinit.DefaultMAC {
			t.Errorf("a cold clone's NIC %s, want %s (a new instance: its seed names it)", got, cloudinit.DefaultMAC)
		}
	})
	// The VM's own snapshot restores as itself: a new generation ID.
	f0, _ := loadFacts(inst)
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
	defer m2.Kill()
	f1, _ := loadFacts(inst)
	if m2.Info().Boot != driver.BootRestored || f1.VMGenID == f0.VMGenID || f1.VMGenID == "" {
		t.Fatalf("restore: boot %q, generation %s (was %s)", m2.Info().Boot, f1.VMGenID, f0.VMGenID)
	}
	if !d.HasSavedState(&store.Instance{Dir: dir}) {
		t.Fatal("the restore consumed the snapshot's state")
	}
}

// TestSnapshotLiveRefused: a disk switch QEMU refuses leaves the VM as it
// was: running, on its top, no layer, no journal, the migration cancelled.
func TestSnapshotLiveRefused(t *testing.T) {
	d := fakeDriver(t, "ok")
	t.Setenv("FVM_FAKE_QEMU_SNAPSHOT", "fail")
	inst, _ := layeredVM(t, d)
	inst.Spec.Accel = "auto"
	reap(t, inst)
	ctx := context.Background()
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	dir := snapDir(t)
	if _, err := m.(driver.LiveSnapshotter).Snapshot(ctx, dir, true); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("snapshot refused by QEMU: %v", err)
	}
	f, _ := loadFacts(inst)
	if f.Next != nil || topOf(t, inst) != inst.Path(DiskFile) {
		t.Fatalf("facts after a refused switch: %+v", f)
	}
	if layers, _ := filepath.Glob(filepath.Join(d.opts.LayersDir, "*")); len(layers) != 0 {
		t.Errorf("layers left: %v", layers)
	}
	if tops, _ := filepath.Glob(inst.Path("disk-*")); len(tops) != 0 {
		t.Errorf("tops left: %v", tops)
	}
	if st, _ := m.State(ctx); st != "running" {
		t.Errorf("the VM is %s after a refused snapshot", st)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in the snapshot dir: %v", ents)
	}
}

// TestFlatten: past MaxLayers a stopped VM's next snapshot streams its
// layers into its top (qemu-img rebase), a running one starts QEMU's
// block-stream job.
func TestFlatten(t *testing.T) {
	d := testDriver(t)
	d.opts.MaxLayers = 2
	inst, base := layeredVM(t, d)
	ctx := context.Background()
	var notice string
	for i := 0; i < 3; i++ {
		res, err := d.Snapshot(ctx, inst, snapDir(t))
		if err != nil {
			t.Fatal(err)
		}
		notice = res.Notice
	}
	top := topOf(t, inst)
	if backingOf(top) != base || !strings.Contains(notice, "flattened") {
		t.Fatalf("after 3 snapshots with a limit of 2: top reads %s (notice %q), want the base", backingOf(top), notice)
	}
}

// TestFlattenRunning: a running VM past the limit starts streaming at start.
func TestFlattenRunning(t *testing.T) {
	d := fakeDriver(t, "ok")
	inst, _ := layeredVM(t, d)
	inst.Spec.Accel = "auto"
	d.opts.MaxLayers = 1
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		d.opts.MaxLayers = 100
		if _, err := d.Snapshot(ctx, inst, snapDir(t)); err != nil {
			t.Fatal(err)
		}
	}
	d.opts.MaxLayers = 1
	reap(t, inst)
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	var n int
	qmpDo(ctx, pathsOf(inst).qmp, func(q *QMP) error {
		var jobs []any
		err := q.Execute(ctx, "query-block-jobs", nil, &jobs)
		n = len(jobs)
		return err
	})
	if n != 1 {
		t.Fatalf("%d block jobs after starting a VM with 2 layers and a limit of 1, want the flattening", n)
	}
}

// TestSavedMACChecked: a saved state's NIC address goes on QEMU's command
// line and into a seed, so anything but a plain address counts as none.
func TestSavedMACChecked(t *testing.T) {
	dir := t.TempDir()
	for mac, want := range map[string]string{
		"52:54:00:ab:cd:ef":           "52:54:00:ab:cd:ef",
		"":                            cloudinit.DefaultMAC,
		"52:54:00:ab:cd:ef,romfile=x": cloudinit.DefaultMAC,
		"52:54:00:AB:CD:EF\n":         cloudinit.DefaultMAC,
	} {
		if err := store.WriteJSON(filepath.Join(dir, StateMetaFile), stateMeta{MAC: mac}); err != nil {
			t.Fatal(err)
		}
		if got := GuestMAC(&vm.Spec{Name: "fork1", Warm: dir}); got != want {
			t.Errorf("saved %q: %s, want %s", mac, got, want)
		}
	}
}
