package qemu

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

func TestMemoryFileArgs(t *testing.T) {
	c := baseConfig()
	c.MemoryFile, c.MemoryShared = "/w/memory,1.ram", true
	a := BuildArgs(c)
	if !hasArg(a, "-machine", "q35,memory-backend=pc.ram") || !hasArg(a, "-object", "memory-backend-file,id=pc.ram,size=2048M,mem-path=/w/memory,,1.ram,share=on") {
		t.Fatalf("a template's memory: %q", a)
	}
	c.MemoryShared = false
	if !hasArg(BuildArgs(c), "-object", "memory-backend-file,id=pc.ram,size=2048M,mem-path=/w/memory,,1.ram,share=off") {
		t.Fatalf("a clone's memory: %q", BuildArgs(c))
	}
	// Where the memory lives is no part of what a state fits.
	if deviceSet(c) != deviceSet(baseConfig()) {
		t.Fatal("the memory file changed the device set")
	}
	// virtiofsd's shared memory wins (VMs with shares are never clones).
	c.Shares = []Share{{Tag: "s0", Socket: "/d/vfs.sock"}}
	for _, x := range BuildArgs(c) {
		if strings.Contains(x, "memory-backend-file") {
			t.Fatalf("a VM with shares maps a memory file: %q", BuildArgs(c))
		}
	}
	if ramID(vm.ARM64) != "mach-virt.ram" || ramID(vm.AMD64) != "pc.ram" {
		t.Fatal("ramID")
	}
}

// TestTemplateMemory drives a warm template whose memory is a file and its
// clones against the fake QEMU: the template's state leaves the memory out,
// a clone maps the file privately and loads the devices only, its own
// snapshots and suspends carry its memory (the snapshot with the guest
// paused), and a clone whose template lost the file boots cold, saying why.
func TestTemplateMemory(t *testing.T) {
	d := fakeDriver(t, "ok")
	ctx := context.Background()
	tmpl, _ := layeredVM(t, d)
	tmpl.Spec.Accel = "auto"
	reap(t, tmpl)
	m, err := d.Start(ctx, tmpl, driver.StartOptions{Template: true})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(tmpl.Path(MemoryFile)); err != nil || !strings.HasPrefix(string(b), "fake memory of ") {
		t.Fatalf("the template's memory is not in its file: %q %v", b, err)
	}
	if err := m.(driver.Suspender).Suspend(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, m)
	var meta stateMeta
	st, err := os.Stat(tmpl.Path(MemoryFile))
	if err != nil || store.ReadJSON(tmpl.Path(StateMetaFile), &meta) != nil || !meta.SharedMemory || meta.MemoryBytes != st.Size() {
		t.Fatalf("template state meta %+v (%v)", meta, err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the template's memory file is %v, want 0600 as the store's files", st.Mode())
	}
	if b, _ := os.ReadFile(tmpl.Path(StateFile)); !strings.Contains(string(b), "memory in file") {
		t.Fatalf("the template's state carries its memory: %q", b)
	}
	if _, err := d.FreezeSnapshot(tmpl); err != nil {
		t.Fatal(err)
	}

	newClone := func(t *testing.T) *store.Instance {
		inst := newInstance(t, tmpl.Spec.BaseImage, 1<<30)
		inst.Spec.Accel = "auto"
		if err := d.Create(ctx, inst, driver.CreateInput{Clone: tmpl.Dir}); err != nil {
			t.Fatal(err)
		}
		reap(t, inst)
		return inst
	}
	inst := newClone(t)
	c, err := d.Start(ctx, inst, driver.StartOptions{Clone: tmpl.Dir})
	if err != nil {
		t.Fatal(err)
	}
	if c.Info().Boot != driver.BootClone {
		t.Fatalf("clone: %+v", c.Info())
	}
	_, args, err := proc.Info(c.Info().PID)
	if err != nil || !hasArg(args, "-incoming", "defer") || !hasArg(args, "-object", memoryFileObject(Config{Arch: vm.AMD64, MemoryMiB: 256, MemoryFile: tmpl.Path(MemoryFile)})) {
		t.Fatalf("the clone does not map its template's memory: %q %v", args, err)
	}
	if f, _ := loadFacts(inst); !f.MappedMemory || f.SharedMemory {
		t.Fatalf("clone facts %+v", f)
	}
	// A host that died between stopping it for a snapshot's copy and the
	// copy: the next one lets it go (the disk switch was journalled).
	mc := c.(*Machine)
	f, _ := loadFacts(inst)
	if _, err := d.beginSwitch(ctx, inst, f); err != nil {
		t.Fatal(err)
	}
	if err := qmpDo(ctx, mc.p.qmp, func(q *QMP) error { return q.Execute(ctx, "stop", nil, nil) }); err != nil {
		t.Fatal(err)
	}
	if err := mc.settle(ctx); err != nil {
		t.Fatal(err)
	}
	var run string
	qmpDo(ctx, mc.p.qmp, func(q *QMP) (err error) { run, err = q.QueryStatus(ctx); return })
	if run != "running" {
		t.Fatalf("a clone stopped for a snapshot its host did not finish is %q", run)
	}
	if f, _ := loadFacts(inst); f.Next != nil {
		t.Fatalf("the switch is still journalled: %+v", f.Next)
	}
	// Its snapshot carries its memory, copied with the guest paused.
	dir := snapDir(t)
	if _, err := c.(driver.LiveSnapshotter).Snapshot(ctx, dir, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dir + "/" + StateFile); !strings.Contains(string(b), "stopped before the copy") || !strings.Contains(string(b), "memory in stream, ignore-shared=false") {
		t.Fatalf("a mapped clone's snapshot: %q", b)
	}
	if s, _ := c.State(ctx); s != vm.Running {
		t.Fatalf("after the snapshot the clone is %s", s)
	}
	// Its suspend too, and it resumes without the template's file.
	if err := c.(driver.Suspender).Suspend(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	if b, _ := os.ReadFile(inst.Path(StateFile)); !strings.Contains(string(b), "memory in stream, ignore-shared=false") {
		t.Fatalf("the clone's suspend: %q", b)
	}
	c, err = d.Start(ctx, inst, driver.StartOptions{})
	if err != nil || c.Info().Boot != driver.BootResumed {
		t.Fatalf("the clone's resume: %v %+v", err, c)
	}
	_, args, _ = proc.Info(c.Info().PID)
	for _, a := range args {
		if strings.Contains(a, "memory-backend-file") {
			t.Fatalf("the resumed clone maps a file: %q", args)
		}
	}
	c.Kill()

	// A snapshot that fails once the clone is stopped for its copy (here the
	// disk's switch) lets the clone go on.
	t.Setenv("FVM_FAKE_QEMU_SNAPSHOT", "fail")
	failing := newClone(t)
	c, err = d.Start(ctx, failing, driver.StartOptions{Clone: tmpl.Dir})
	if err != nil || c.Info().Boot != driver.BootClone {
		t.Fatalf("a second clone: %v %+v", err, c)
	}
	if _, err := c.(driver.LiveSnapshotter).Snapshot(ctx, snapDir(t), true); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("a failing snapshot of a mapped clone: %v", err)
	}
	qmpDo(ctx, c.(*Machine).p.qmp, func(q *QMP) (err error) { run, err = q.QueryStatus(ctx); return })
	if run != "running" {
		t.Fatalf("after a failed snapshot the clone is %q", run)
	}
	c.Kill()

	// The template's file gone: a cold boot that says why.
	os.Remove(tmpl.Path(MemoryFile))
	lost := newClone(t)
	c, err = d.Start(ctx, lost, driver.StartOptions{Clone: tmpl.Dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kill()
	if c.Info().Boot != driver.BootCold || !strings.Contains(c.Info().Notice, "memory file") {
		t.Fatalf("a clone without its template's memory: %+v", c.Info())
	}
}
