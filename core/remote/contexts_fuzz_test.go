package remote

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzContextsFile: whatever contexts.json holds, reading it and parsing the
// hosts it names returns values or errors, never a panic.
func FuzzContextsFile(f *testing.F) {
	f.Add([]byte(`{"current":"srv","contexts":[{"name":"srv","host":"ssh://me@server:2222","description":"x"}]}`))
	f.Add([]byte(`{"contexts":[{"name":"a","host":"ssh://[::1]:22"},{"name":"","host":""}]}`))
	f.Add([]byte(`{"contexts":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ContextsFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s := Contexts{Dir: dir}
		list, _, err := s.List()
		if err != nil {
			return
		}
		for _, c := range list {
			ParseHost(c.Host)
			s.Get(c.Name)
		}
		s.Current()
	})
}
