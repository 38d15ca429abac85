package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

// within fails the test if f does not return within a few seconds: a read
// that blocks on a FIFO would hang the test binary instead of failing.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

func TestReadFileRefusesWhatFvmNeverWrites(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.json")
	os.WriteFile(ok, []byte(`{"a":1}`), 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(ok, link)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, bytes.Repeat([]byte{'x'}, MaxStateFile+1), 0o600)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)

	within(t, "ReadFile", func() {
		if b, err := ReadFile(ok); err != nil || string(b) != `{"a":1}` {
			t.Errorf("regular file: %q %v", b, err)
		}
		for _, c := range []struct {
			path string
			want error
			says string
		}{
			{fifo, ErrNotRegular, "a FIFO"},
			{link, ErrNotRegular, "a symlink"},
			{sub, ErrNotRegular, "a directory"},
			{big, ErrTooLarge, "bytes"},
			{filepath.Join(dir, "missing"), fs.ErrNotExist, "no such file"},
		} {
			_, err := ReadFile(c.path)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("ReadFile(%s) = %v, want %v saying %q", filepath.Base(c.path), err, c.want, c.says)
			}
			var v map[string]any
			if err := ReadJSON(c.path, &v); !errors.Is(err, c.want) {
				t.Errorf("ReadJSON(%s) = %v, want %v", filepath.Base(c.path), err, c.want)
			}
		}
	})
	if b, err := ReadFileLimited(ok, 3); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFileLimited under the size = %q, %v", b, err)
	}
}

func TestReadTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte("0123456789"), 0o600)
	if b, err := ReadTail(p, 4); err != nil || string(b) != "6789" {
		t.Fatalf("ReadTail = %q %v", b, err)
	}
	if b, err := ReadTail(p, 100); err != nil || string(b) != "0123456789" {
		t.Fatalf("ReadTail of more than the file = %q %v", b, err)
	}
	fifo := p + ".fifo"
	syscall.Mkfifo(fifo, 0o600)
	within(t, "ReadTail of a FIFO", func() {
		if _, err := ReadTail(fifo, 4); !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadTail of a FIFO: %v", err)
		}
	})
}

// TestDirectoryNameIsTheIdentity: a VM directory whose spec names another VM
// (a copied directory), a FIFO spec and a symlink in place of a directory are
// broken VMs listed under their directory names, never under the spec's name,
// and never hang List.
func TestDirectoryNameIsTheIdentity(t *testing.T) {
	t.Setenv("FVM_HOME", t.TempDir())
	s := New(DefaultLayout())
	a, _ := s.Create(vm.Spec{Name: "a", Image: "x"})
	if err := s.Commit(a); err != nil {
		t.Fatal(err)
	}
	copied := s.Layout.InstanceDir("copy")
	os.Mkdir(copied, 0o700)
	b, _ := os.ReadFile(a.Path(SpecFile))
	os.WriteFile(filepath.Join(copied, SpecFile), b, 0o600) // names "a"
	fifo := s.Layout.InstanceDir("fifo")
	os.Mkdir(fifo, 0o700)
	syscall.Mkfifo(filepath.Join(fifo, SpecFile), 0o600)
	os.Symlink(a.Dir, s.Layout.InstanceDir("link"))

	var list []*Instance
	var broken []Broken
	within(t, "List", func() { list, broken, _ = s.List() })
	if len(list) != 1 || list[0].Spec.Name != "a" {
		t.Fatalf("List = %v: want a alone", list)
	}
	want := map[string]string{
		"copy": `its spec.json names vm "a" instead`,
		"fifo": "is a FIFO",
		"link": "is a symlink, not a directory",
	}
	if len(broken) != len(want) {
		t.Fatalf("broken = %+v", broken)
	}
	for _, b := range broken {
		if !strings.Contains(b.Reason, want[b.Name]) || !strings.HasSuffix(b.Reason, "remove it with `fvm rm "+b.Name+"`") ||
			b.Dir != s.Layout.InstanceDir(b.Name) || strings.Contains(b.Reason, "\n") {
			t.Errorf("broken %s: %+v, want a reason with %q", b.Name, b, want[b.Name])
		}
		if _, err := s.Get(b.Name); err == nil {
			t.Errorf("Get(%s) works on a broken VM", b.Name)
		}
		if err := s.Remove(b.Name); err != nil || s.Exists(b.Name) {
			t.Errorf("Remove(%s): %v", b.Name, err)
		}
	}
	if _, err := s.Get("a"); err != nil {
		t.Fatalf("removing the broken VMs touched a: %v", err)
	}
}

func TestPrivateModes(t *testing.T) {
	t.Setenv("FVM_HOME", t.TempDir())
	l := DefaultLayout()
	s := New(l)
	inst, _ := s.Create(vm.Spec{Name: "a"})
	s.Commit(inst)
	if st, _ := os.Stat(inst.Path(SpecFile)); st.Mode().Perm() != PrivateFile {
		t.Errorf("spec.json is %v, want 0600", st.Mode().Perm())
	}
	// What an older fvm left: world-readable bases, a 0755 VM dir, a 0644 spec.
	os.MkdirAll(l.BasesDir(), 0o755)
	os.Chmod(l.CacheDir, 0o755)
	os.Chmod(l.BasesDir(), 0o755)
	base := filepath.Join(l.BasesDir(), "sha256-x.qcow2")
	os.WriteFile(base, nil, 0o444)
	os.Chmod(inst.Dir, 0o755)
	os.Chmod(inst.Path(SpecFile), 0o644)
	os.MkdirAll(filepath.Join(l.WarmDir(), "snap"), 0o755)
	os.WriteFile(filepath.Join(l.WarmDir(), "snap", "disk.qcow2"), nil, 0o444)
	fixed := l.FixModes()
	for p, want := range map[string]os.FileMode{
		l.CacheDir: 0o700, l.BasesDir(): 0o700, base: 0o400, inst.Dir: 0o700, inst.Path(SpecFile): 0o600,
		filepath.Join(l.WarmDir(), "snap"): 0o700, filepath.Join(l.WarmDir(), "snap", "disk.qcow2"): 0o400,
	} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s after FixModes: %v %v, want %v", p, st.Mode().Perm(), err, want)
		}
	}
	if len(fixed) < 7 {
		t.Errorf("FixModes reports %d paths: %v", len(fixed), fixed)
	}
	if again := l.FixModes(); len(again) != 0 {
		t.Errorf("a second FixModes changed %v", again)
	}
}
