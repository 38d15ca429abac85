package host

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fvmhq/fvm/core/store"
)

// TestExcludeOnce: VM disks, bases, warm snapshots and layers are excluded from
// Time Machine once per directory; one excluded before is left alone, and a
// failure is reported without stopping the others.
func TestExcludeOnce(t *testing.T) {
	root := t.TempDir()
	l := store.Layout{DataDir: filepath.Join(root, "data"), CacheDir: filepath.Join(root, "cache")}
	dirs := backupDirs(l)
	if !slices.Equal(dirs, []string{l.VMsDir(), l.BasesDir(), l.WarmDir(), l.LayersDir()}) {
		t.Fatalf("dirs %v", dirs)
	}
	marked := map[string]bool{l.BasesDir(): true, l.LayersDir(): true}
	var ran []string
	exclude := func(d string) error {
		ran = append(ran, d)
		if d == l.WarmDir() {
			return errors.New("tmutil: exit status 1")
		}
		marked[d] = true
		return nil
	}
	done, errs := excludeOnce(dirs, func(d string) bool { return marked[d] }, exclude)
	if !slices.Equal(done, []string{l.VMsDir()}) || len(errs) != 1 || !slices.Equal(ran, []string{l.VMsDir(), l.WarmDir()}) {
		t.Errorf("first run: done %v, errs %v, ran %v", done, errs, ran)
	}
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s not made private: %v", d, err)
		}
	}
	ran = nil
	excludeOnce(dirs, func(d string) bool { return marked[d] }, exclude)
	if !slices.Equal(ran, []string{l.WarmDir()}) {
		t.Errorf("second run excluded %v again; want only the one that failed", ran)
	}
}
