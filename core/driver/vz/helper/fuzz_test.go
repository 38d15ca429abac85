package helper

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// FuzzLoadPlan: whatever a VM directory's vz-plan.json holds, the helper
// loads a plan for that directory at this plan version or refuses it, never
// panics.
func FuzzLoadPlan(f *testing.F) {
	good, _ := json.Marshal(vzd.Plan{Version: vzd.PlanVersion, Dir: "/DIR"})
	f.Add(good)
	f.Add([]byte(`{"version":1,"dir":"/elsewhere"}`))
	f.Add([]byte(`{"version":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		b = []byte(strings.ReplaceAll(string(b), "/DIR", dir)) // a seed names the test's directory
		os.WriteFile(filepath.Join(dir, vzd.PlanFile), b, 0o600)
		p, err := LoadPlan(dir)
		if err == nil && (p.Version != vzd.PlanVersion || p.Dir != dir) {
			t.Fatalf("loaded a plan of version %d for %q in %s", p.Version, p.Dir, dir)
		}
	})
}
