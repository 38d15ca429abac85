package daemon

import (
	"os"
	"testing"

	"github.com/fvmhq/fvm/core/store"
)

// FuzzStartReport: whatever start.json holds, reading it and writing its
// phases for a log line returns, never panics.
func FuzzStartReport(f *testing.F) {
	f.Add([]byte(`{"boot":"clone","startedAt":"2026-12-06T00:26:49Z","via":"agent","phases":[{"name":"restore","seconds":1.4},{"name":"key-live","seconds":6.5}]}`))
	f.Add([]byte(`{"phases":[{"name":"x","seconds":1e300},{"name":"","seconds":-1}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		inst := &store.Instance{Dir: t.TempDir()}
		if err := os.WriteFile(inst.Path(store.StartFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if r := loadStartReport(inst); r != nil {
			phasesText(*r)
		}
	})
}
