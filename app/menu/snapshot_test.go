package menu

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// The fake client's snapshot and clone calls (snapshot.go).

func (c *fakeClient) CreateSnapshot(_ context.Context, name, tag string) (api.Snapshot, error) {
	c.record("snapshot %s %s", name, tag)
	return api.Snapshot{VM: name, Tag: tag, Memory: true, PauseSeconds: 0.12}, nil
}

func (c *fakeClient) Clone(_ context.Context, src string, req api.CloneRequest) (api.VM, error) {
	c.record("clone %s %s", src, req.Name)
	v := mkVM(req.Name, vm.Running)
	c.set(v)
	return v, nil
}

// TestSnapshotAndClone: Snapshot… asks for a tag and reports the pause;
// Clone… asks for a name and makes the clone.
func TestSnapshotAndClone(t *testing.T) {
	h := start(t, Options{}, mkVM("web", vm.Running))
	h.waitTitle(t, "● web")
	h.dialogs.entry = "before-upgrade"
	h.tray.click(t, "● web", "Snapshot…")
	h.menu.Wait()
	h.dialogs.entry = "web2"
	h.tray.click(t, "● web", "Clone…")
	h.menu.Wait()
	calls := h.client.Calls()
	if !slices.Contains(calls, "snapshot web before-upgrade") || !slices.Contains(calls, "clone web web2") {
		t.Fatalf("calls %q", calls)
	}
	asked := strings.Join(h.dialogs.Asked(), "\n")
	if !strings.Contains(asked, "notify: Snapshot before-upgrade of web: its disk and memory (paused 120 ms)") || !strings.Contains(asked, "notify: web2 is a clone of web") {
		t.Fatalf("dialogs %q", asked)
	}
	if e := h.dialogs.Errors(); len(e) != 0 {
		t.Fatalf("errors %q", e)
	}
}
