package daemon

import (
	"path/filepath"
	"testing"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/warm"
)

// Only a clone that boots cold from a copied disk gets a new machine id from
// its seed: a clone restored from memory was re-identified, and its seed must
// not replace that id at its next cold boot (e2e: a warm clone's restart kept
// its hostname but lost its machine id).
func TestNewMachineIDOnlyForColdCopies(t *testing.T) {
	snap := func(diskOnly bool) string {
		dir := t.TempDir()
		if err := store.WriteJSON(filepath.Join(dir, warm.InfoFile), warm.Info{DiskOnly: diskOnly}); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		warm string
		want bool
	}{
		{"", false},
		{snap(false), false},
		{snap(true), true},
		{filepath.Join(t.TempDir(), "gone"), false},
	} {
		inst := &store.Instance{}
		inst.Spec.Warm = tc.warm
		if got := bootsColdFromCopy(inst); got != tc.want {
			t.Errorf("warm %q: new machine id %v, want %v", tc.warm, got, tc.want)
		}
	}
}
