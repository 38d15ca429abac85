package store

import (
	"errors"
	"os"
	"path/filepath"
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
	if _, err := s.Create(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(spec); err == nil {
		t.Fatal("duplicate create succeeded")
	}
	s.Create(vm.Spec{Name: "a", Image: "y"})
	os.MkdirAll(s.Layout.InstanceDir("junk"), 0o700) // no spec: skipped
	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].Spec.Name != "a" {
		t.Fatalf("List = %v, %v", list, err)
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
