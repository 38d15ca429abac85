package snapshot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/warm"
)

func TestTags(t *testing.T) {
	for _, ok := range []string{"t1", "before-upgrade", "v1.2_rc", DefaultTag(time.Date(2026, 12, 5, 21, 30, 0, 0, time.UTC))} {
		if err := ValidateTag(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".hidden", "-x", "a/b", "..", "a b", strings.Repeat("x", 65), ".tmp-x"} {
		if err := ValidateTag(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got := DefaultTag(time.Date(2026, 12, 5, 21, 30, 7, 0, time.UTC)); got != "20261205-213007" {
		t.Errorf("default tag %q", got)
	}
}

// TestCommitListClean: a snapshot appears under its tag complete, is listed
// oldest first, never replaces another; interrupted ones are cleaned; a
// clone's copy is links.
func TestCommitListClean(t *testing.T) {
	inst := t.TempDir()
	mk := func(tag string, at time.Time, memory bool) string {
		tmp, err := NewDir(inst, tag)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(tmp, "state"), []byte("memory"), 0o444)
		os.Symlink("/layers/x.qcow2", filepath.Join(tmp, "disk.qcow2"))
		dir, err := Commit(tmp, Info{Info: warm.Info{CreatedAt: at, DiskOnly: !memory, Backend: "qemu"}, Tag: tag, VM: "web1"})
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	now := time.Now()
	d2 := mk("b", now, true)
	mk("a", now.Add(-time.Hour), false)
	list, err := List(inst)
	if err != nil || len(list) != 2 || list[0].Tag != "a" || list[1].Tag != "b" || list[0].Memory || !list[1].Memory {
		t.Fatalf("list %+v %v", list, err)
	}
	tmp, _ := NewDir(inst, "b")
	if _, err := Commit(tmp, Info{Tag: "b"}); err == nil {
		t.Fatal("a second b replaced the first")
	}
	if got := CleanStale(filepath.Dir(inst)); len(got) != 1 || got[0] != tmp {
		t.Fatalf("clean %v, want %s", got, tmp)
	}
	origin := filepath.Join(t.TempDir(), store.OriginDir)
	if err := LinkTree(d2, origin); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(d2, "state"))
	b, _ := os.Stat(filepath.Join(origin, "state"))
	if !os.SameFile(a, b) {
		t.Error("the origin's state is not a link of the snapshot's")
	}
	if l, _ := os.Readlink(filepath.Join(origin, "disk.qcow2")); l != "/layers/x.qcow2" {
		t.Errorf("the origin's disk link: %q", l)
	}
	if err := Remove(d2); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(origin, "state")); string(b) != "memory" {
		t.Error("removing the snapshot took the clone's copy")
	}
}
