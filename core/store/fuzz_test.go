package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzStateFiles: whatever bytes a VM directory's spec.json and runtime.json
// hold (torn, hostile, huge), List and Get answer without a panic: the VM is
// usable under its directory's name, or broken with a one-line reason.
func FuzzStateFiles(f *testing.F) {
	f.Add([]byte(`{"name":"web1","image":"debian","cpus":2}`), []byte(`{"sshPort":2222,"accel":"tcg"}`))
	f.Add([]byte(`{"name":"other"}`), []byte(`{"sshPort":"x"}`))
	f.Add([]byte(`{"name": "we`), []byte{0, 1, 2})
	f.Add([]byte(`{"name":"web1","ports":[{"hostPort":99999}]}`), []byte(`null`))
	f.Fuzz(func(t *testing.T, spec, runtime []byte) {
		l := Layout{DataDir: t.TempDir()}
		dir := l.InstanceDir("web1")
		os.MkdirAll(dir, 0o700)
		os.WriteFile(filepath.Join(dir, SpecFile), spec, 0o600)
		os.WriteFile(filepath.Join(dir, RuntimeFile), runtime, 0o600)
		s := New(l)
		list, broken, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(list)+len(broken) != 1 {
			t.Fatalf("List = %v, %v: want web1 once, usable or broken", list, broken)
		}
		for _, inst := range list {
			if inst.Spec.Name != "web1" {
				t.Fatalf("listed as %q from directory web1", inst.Spec.Name)
			}
			inst.LoadRuntime()
		}
		for _, b := range broken {
			if b.Name != "web1" || strings.ContainsAny(b.Reason, "\n\r") {
				t.Fatalf("broken %+v", b)
			}
		}
		if _, err := s.Get("web1"); (err == nil) != (len(list) == 1) {
			t.Fatalf("Get and List disagree: %v", err)
		}
	})
}
