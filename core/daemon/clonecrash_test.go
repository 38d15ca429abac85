package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
)

func TestGuestCrashed(t *testing.T) {
	p := filepath.Join(t.TempDir(), store.SerialLog)
	if got := guestCrashed(p, 0); got != "" {
		t.Fatalf("no log: %q", got)
	}
	os.WriteFile(p, []byte("[    1.0] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\r\nlogin: \r\n"), 0o600)
	from := serialSize(p)
	if got := guestCrashed(p, 0); got != "[    1.0] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI" {
		t.Fatalf("crash line %q", got)
	}
	if got := guestCrashed(p, from); got != "" {
		t.Fatalf("a crash before this start counted: %q", got)
	}
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("[  114.1] BUG: kernel NULL pointer dereference, address: 0000000000000000\r\n")
	f.Close()
	if got := guestCrashed(p, from); !strings.Contains(got, "NULL pointer") {
		t.Fatalf("crash after the start: %q", got)
	}
}

// TestCloneKernelCrashRestoredAgain: a restored clone whose guest kernel
// crashed is put back on its snapshot's disk and restored again (up to
// three restores), not booted cold at once; one that crashes each time
// boots cold, saying so.
func TestCloneKernelCrashRestoredAgain(t *testing.T) {
	h, drv := snapHost(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("web1"), Start: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		crashes  int
		restores int
		why      string
	}{
		{"c1", 1, 2, "could not be re-identified"}, // the fake guest has no SSH: the second restore fails too, not by a crash
		{"c2", 2, 3, "could not be re-identified"}, // restored a third time
		{"c5", 3, 3, "crashed after its restore, 3 times"},
	} {
		drv.mu.Lock()
		drv.crashes, drv.starts, drv.calls = c.crashes, nil, nil
		drv.mu.Unlock()
		v, err := h.c.Clone(ctx, "web1", api.CloneRequest{Name: c.name})
		if err != nil {
			t.Fatal(err)
		}
		origin := filepath.Join(h.layout.InstanceDir(c.name), store.OriginDir)
		var restores, colds int
		for _, o := range drv.starts {
			if o.Clone == origin {
				restores++
			} else if o.Clone == "" {
				colds++
			}
		}
		if restores != c.restores || colds != 1 || !slices.Contains(drv.calls, "revert "+c.name) {
			t.Fatalf("%s: %d restores, %d cold boots, calls %v; want %d restores, each crashed one reverted, then a cold boot", c.name, restores, colds, drv.calls, c.restores)
		}
		if !strings.Contains(v.Notice, c.why) {
			t.Errorf("%s: notice %q, want %q", c.name, v.Notice, c.why)
		}
		rep := loadStartReport(&store.Instance{Dir: h.layout.InstanceDir(c.name)})
		if rep == nil || !slices.ContainsFunc(rep.Phases, func(p api.StartPhase) bool { return p.Name == "clone-crashed" }) || !strings.Contains(rep.Note, "crashed") {
			t.Errorf("%s: start report %+v has no clone-crashed phase", c.name, rep)
		}
	}
	// A driver that cannot restore the clone again boots it cold itself: no
	// re-identification of a cold boot, and the start says why.
	drv.mu.Lock()
	drv.crashes, drv.coldAfterRevert, drv.starts, drv.calls = 1, true, nil, nil
	drv.mu.Unlock()
	v, err := h.c.Clone(ctx, "web1", api.CloneRequest{Name: "c4"})
	if err != nil {
		t.Fatal(err)
	}
	if len(drv.starts) != 2 || !strings.Contains(v.Notice, "could not be restored again") {
		t.Fatalf("a clone the driver booted cold on its second restore: starts %+v, notice %q", drv.starts, v.Notice)
	}
	if rep := loadStartReport(&store.Instance{Dir: h.layout.InstanceDir("c4")}); rep == nil || rep.Boot != "cold" {
		t.Fatalf("c4's start report %+v, want a cold boot", rep)
	}
	// A clone that cannot be put back on its snapshot's disk says that, not
	// that its re-identification failed.
	drv.mu.Lock()
	drv.crashes, drv.coldAfterRevert, drv.revertErr, drv.starts = 1, false, errors.New("disk layer gone"), nil
	drv.mu.Unlock()
	v, err = h.c.Clone(ctx, "web1", api.CloneRequest{Name: "c9"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.Notice, "could not be restored again (disk layer gone)") || strings.Contains(v.Notice, "re-identified") {
		t.Fatalf("a clone whose revert failed: notice %q", v.Notice)
	}
	drv.mu.Lock()
	drv.coldAfterRevert, drv.revertErr = false, nil
	drv.mu.Unlock()

	// A clone whose restore did not crash boots cold at once, as before.
	drv.mu.Lock()
	drv.crashes, drv.starts, drv.calls = 0, nil, nil
	drv.mu.Unlock()
	if _, err := h.c.Clone(ctx, "web1", api.CloneRequest{Name: "c3"}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(drv.calls, "revert c3") || len(drv.starts) != 2 {
		t.Fatalf("a clone that did not crash: starts %+v, calls %v", drv.starts, drv.calls)
	}
}
