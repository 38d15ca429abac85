package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/vm"
)

func TestLayoutFromFVMHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FVM_HOME", home)
	l := DefaultLayout()
	for _, p := range []string{l.ConfigFile(), l.SocketPath(), l.InstanceDir("a"), l.BasesDir(), l.UserKey()} {
		if rel, err := filepath.Rel(home, p); err != nil || rel[0] == '.' {
			t.Errorf("%s is not under FVM_HOME", p)
		}
	}
	if len(l.SocketPath()) > 103 {
		t.Errorf("socket path too long")
	}
	if err := l.EnsureRunDir(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(l.RunDir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("run dir mode %v", st.Mode().Perm())
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFileAtomic(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "two" || st.Mode().Perm() != 0o644 {
		t.Fatalf("got %q %v", b, st.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Fatal("want error for missing dir")
	}
}

func TestTryLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	l1, err := TryLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLock(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock: %v, want ErrLocked", err)
	}
	l1.Unlock()
	l2, err := TryLock(p)
	if err != nil {
		t.Fatal(err)
	}
	l2.Unlock()
}

func TestInstances(t *testing.T) {
	t.Setenv("FVM_HOME", t.TempDir())
	s := New(DefaultLayout())
	spec := vm.Spec{Name: "b", Image: "x"}
	b, err := s.Create(spec)
	if err != nil {
		t.Fatal(err)
	}
	if s.Exists("b") {
		t.Fatal("a VM directory appeared before Commit")
	}
	if l, _, _ := s.List(); len(l) != 0 {
		t.Fatalf("List before Commit = %v", l)
	}
	if err := s.Commit(b); err != nil || b.Dir != s.Layout.InstanceDir("b") {
		t.Fatalf("Commit: %v, dir %s", err, b.Dir)
	}
	if _, err := s.Create(spec); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	// Two creates racing for one name: the second Commit never replaces the first.
	x1, _ := s.Create(vm.Spec{Name: "x"})
	x2, _ := s.Create(vm.Spec{Name: "x"})
	if err := s.Commit(x1); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(x1.Path("marker"), nil, 0o600)
	if err := s.Commit(x2); !errors.Is(err, ErrExists) {
		t.Fatalf("second Commit: %v", err)
	}
	if _, err := os.Stat(x1.Path("marker")); err != nil {
		t.Fatal("the second Commit replaced the first VM")
	}
	s.Discard(x2)
	a, _ := s.Create(vm.Spec{Name: "a", Image: "y"})
	s.Commit(a)
	s.Remove("x")
	os.MkdirAll(s.Layout.InstanceDir("junk"), 0o700) // no spec: broken
	os.MkdirAll(s.Layout.InstanceDir("torn"), 0o700)
	os.WriteFile(filepath.Join(s.Layout.InstanceDir("torn"), SpecFile), []byte(`{"name":`), 0o600)
	os.MkdirAll(s.Layout.InstanceDir("Not_A_Name"), 0o700) // not fvm's: ignored
	left, _ := s.Create(vm.Spec{Name: "left"})             // a create killed before Commit
	list, broken, err := s.List()
	if err != nil || len(list) != 2 || list[0].Spec.Name != "a" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if len(broken) != 2 || broken[0].Name != "junk" || broken[1].Name != "torn" ||
		!strings.Contains(broken[1].Reason, "cannot be read") || !strings.Contains(broken[0].Reason, "fvm rm junk") {
		t.Fatalf("broken = %+v", broken)
	}
	if removed := s.CleanStale(); len(removed) != 1 || removed[0] != left.Dir {
		t.Fatalf("CleanStale removed %v, want %s", removed, left.Dir)
	}
	inst, _ := s.Get("b")
	if err := inst.SaveRuntime(Runtime{SSHPort: 2222, Accel: "tcg"}); err != nil {
		t.Fatal(err)
	}
	rt, _ := inst.LoadRuntime()
	if rt.SSHPort != 2222 {
		t.Fatal(rt)
	}
	if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(nope) = %v", err)
	}
	if err := s.Remove("b"); err != nil || s.Exists("b") {
		t.Fatalf("Remove: %v", err)
	}
}

// TestDarwinLayout: bases and warm snapshots live with the data on macOS,
// out of ~/Library/Caches; an install that has its bases there keeps them.
func TestDarwinLayout(t *testing.T) {
	none := func(string) bool { return false }
	l := darwinLayout("/Users/me", none)
	if l.CacheDir != "/Users/me/Library/Application Support/fvm/cache" || l.BasesDir() != "/Users/me/Library/Application Support/fvm/cache/bases" || l.InLibraryCaches("/Users/me") {
		t.Errorf("fresh install: %+v", l)
	}
	if l.DataDir != "/Users/me/Library/Application Support/fvm" || l.RunDir != "/Users/me/.fvm/run" {
		t.Errorf("fresh install: %+v", l)
	}
	old := func(p string) bool { return p == "/Users/me/Library/Caches/fvm" }
	if l := darwinLayout("/Users/me", old); l.CacheDir != "/Users/me/Library/Caches/fvm" || !l.InLibraryCaches("/Users/me") {
		t.Errorf("an earlier install's cache: %+v", l)
	}
	both := func(p string) bool { return true }
	if l := darwinLayout("/Users/me", both); l.CacheDir != "/Users/me/Library/Application Support/fvm/cache" {
		t.Errorf("both exist: %+v, want the new one", l)
	}
}

// TestRemoveIsOneStep: a VM being removed leaves the listing before any of
// its files goes, so a crash part way (simulated: the tomb a rename left)
// never shows a VM whose disk is gone; the next host's CleanStale removes it.
func TestRemoveIsOneStep(t *testing.T) {
	t.Setenv("FVM_HOME", t.TempDir())
	s := New(DefaultLayout())
	for _, n := range []string{"gone", "half"} {
		inst, _ := s.Create(vm.Spec{Name: n})
		os.WriteFile(inst.Path("disk.qcow2"), []byte("x"), 0o400) // read-only, as bases are
		os.Mkdir(inst.Path("snapshots"), 0o700)
		if err := s.Commit(inst); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove("gone"); err != nil || s.Exists("gone") {
		t.Fatalf("Remove: %v", err)
	}
	if err := s.Remove("never-made"); err != nil {
		t.Fatalf("Remove of a VM that is not there: %v", err)
	}
	// A host killed between the rename and the end of the removal.
	tomb := filepath.Join(s.Layout.VMsDir(), removingPrefix+"half-0a1b")
	if err := os.Rename(s.Layout.InstanceDir("half"), tomb); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(tomb, "disk.qcow2"))
	if l, b, _ := s.List(); len(l)+len(b) != 0 {
		t.Fatalf("a VM part way through its removal is listed: %v %v", l, b)
	}
	if removed := s.CleanStale(); len(removed) != 1 || removed[0] != tomb {
		t.Fatalf("CleanStale removed %v, want %s", removed, tomb)
	}
	if ents, _ := os.ReadDir(s.Layout.VMsDir()); len(ents) != 0 {
		t.Fatalf("left in the VMs directory: %v", ents)
	}
}

// Replace exchanges a created directory with a VM's in one step: the VM's
// old files end in the temporary, which Discard removes.
func TestReplace(t *testing.T) {
	t.Setenv("FVM_HOME", t.TempDir())
	s := New(DefaultLayout())
	old, _ := s.Create(vm.Spec{Name: "web"})
	os.WriteFile(old.Path("mine"), []byte("old"), 0o600)
	if err := s.Commit(old); err != nil {
		t.Fatal(err)
	}
	fresh, _ := s.Create(vm.Spec{Name: "spare-1"}) // made under another name, then named as the VM
	fresh.Spec.Name = "web"
	fresh.SaveSpec()
	os.WriteFile(fresh.Path("mine"), []byte("new"), 0o600)
	tmp := fresh.Dir
	gone, err := s.Replace(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Dir != s.Layout.InstanceDir("web") || gone.Dir != tmp {
		t.Fatalf("dirs after Replace: %s, %s", fresh.Dir, gone.Dir)
	}
	if b, _ := os.ReadFile(fresh.Path("mine")); string(b) != "new" {
		t.Errorf("the VM's directory holds %q", b)
	}
	if b, _ := os.ReadFile(gone.Path("mine")); string(b) != "old" {
		t.Errorf("the temporary holds %q", b)
	}
	if err := s.Discard(gone); err != nil {
		t.Fatal(err)
	}
	if l, _, _ := s.List(); len(l) != 1 || l[0].Spec.Name != "web" {
		t.Errorf("List = %v", l)
	}
	if _, err := s.Replace(fresh); err == nil {
		t.Error("Replace took a directory that is no temporary of a create")
	}
	lone, _ := s.Create(vm.Spec{Name: "nothing-there"})
	if _, err := s.Replace(lone); err == nil {
		t.Error("Replace put a directory in place of no VM")
	}
}

// A handed-over spare's old path (a link to its VM) goes at a host start only
// once its VM is gone.
func TestCleanStaleSpareLinks(t *testing.T) {
	t.Setenv("FVM_HOME", t.TempDir())
	s := New(DefaultLayout())
	vm1, _ := s.Create(vm.Spec{Name: "web"})
	s.Commit(vm1)
	link := filepath.Join(s.Layout.VMsDir(), ".creating-spare-1-2")
	os.Symlink("web", link)
	s.CleanStale()
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("the link to a VM that is there went: %v", err)
	}
	if _, err := os.Stat(vm1.Dir); err != nil {
		t.Fatalf("the VM went: %v", err)
	}
	os.RemoveAll(vm1.Dir)
	s.CleanStale()
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("the dangling link stayed: %v", err)
	}
}
