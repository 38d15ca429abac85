package vz

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzFacts: whatever vz.json holds, BasesInUse answers clean paths or an
// error, never a panic (prune reads it for every vz VM).
func FuzzFacts(f *testing.F) {
	f.Add([]byte(`{"helper":"/Applications/fvm.app/Contents/MacOS/fvm-vz","raw":"/c/bases/sha256-x.vz.raw","base":"/c/bases/sha256-x.qcow2"}`))
	f.Add([]byte(`{"raw":"../../etc/passwd","base":""}`))
	f.Add([]byte(`{"raw":5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, FactsFile), b, 0o600)
		paths, err := (&Driver{}).BasesInUse(dir)
		if err != nil {
			return
		}
		for _, p := range paths {
			if p == "" || p != filepath.Clean(p) {
				t.Fatalf("BasesInUse gave %q", p)
			}
		}
	})
}
