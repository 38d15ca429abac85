//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// spareReady is what `fvm image warm --spare` says when the spare is ready.
const spareReady = "A spare clone of it is ready"

// TestSpareClones: with `fvm image warm --spare` the host keeps a clone of
// the snapshot ready; `fvm run -d` is handed it, and the VM is its own
// machine as any clone is (hostname, machine id, host key pinned, vmgenid,
// instance id, clock, timers, journal, consoles), the template's key
// refused; the next spare is made after, and the next VM is distinct from
// the first; --spare=false ends it.
func TestSpareClones(t *testing.T) {
	ensureImage(t)
	shape := []string{"--memory", "1G"}
	warmArgs := append([]string{"image", "warm", "debian-local"}, shape...)
	r := fvm(t, append(warmArgs, "--spare")...)
	if r.code != 0 || !strings.Contains(r.stderr, spareReady) {
		t.Fatalf("image warm --spare: %+v", r)
	}
	t.Cleanup(func() {
		fvm(t, append(warmArgs, "--spare=false")...)
		fvm(t, "rm", "-f", "spare1", "spare2", "spare3")
	})
	var snap struct {
		HostKeyPublic string `json:"hostKeyPublic"`
		InstanceID    string `json:"instanceID"`
	}
	if err := store.ReadJSON(filepath.Join(strings.TrimSpace(r.stdout), "snapshot.json"), &snap); err != nil {
		t.Fatal(err)
	}
	ids := map[string]map[string]string{}
	for i, n := range []string{"spare1", "spare2"} {
		if i > 0 { // the next spare, made after the handover
			waitSpare(t, warmArgs)
		}
		t0 := time.Now()
		r := fvm(t, append([]string{"run", "-d", "debian-local", n}, shape...)...)
		if r.code != 0 || !strings.Contains(r.stderr, "clone of its warm snapshot") {
			t.Fatalf("run %s: %+v", n, r)
		}
		t.Logf("MEASURE spare clone run -d → SSH ready: %s", time.Since(t0))
		ids[n] = cloneIdentity(t, n, snap.InstanceID, "spare", "thaw,rename,adopt,first-ssh")
		if err := dialWithHostKey(t, n, snap.HostKeyPublic); !errors.Is(err, sshx.ErrHostKeyMismatch) {
			t.Errorf("%s with the template's host key pinned: %v, want a mismatch", n, err)
		}
		// Plain OpenSSH under the VM's name: its known_hosts line names it.
		if out := mustFVM(t, "ssh", n, "--", "hostname"); strings.TrimSpace(out) != n {
			t.Errorf("fvm ssh %s: %q", n, out)
		}
		if left, _ := filepath.Glob(filepath.Join(layout.VMsDir(), ".creating-*")); i == 0 && len(left) > 0 {
			t.Errorf("after the handover: %v", left) // the next spare comes 20 s later
		}
	}
	for _, k := range []string{"hostname", "machine-id", "hostkey", "vmgenid", "instance-id"} {
		if ids["spare1"][k] == ids["spare2"][k] || ids["spare1"][k] == "" {
			t.Errorf("the two VMs share their %s (%q)", k, ids["spare1"][k])
		}
	}

	t.Run("not-for-other-specs", func(t *testing.T) {
		// A VM with its own forwards is cloned as usual; the spare waits on.
		waitSpare(t, warmArgs)
		r := fvm(t, append([]string{"run", "-d", "debian-local", "spare3", "-p", fmt.Sprintf("%d:8080", freePort(t))}, shape...)...)
		if r.code != 0 {
			t.Fatalf("run spare3: %+v", r)
		}
		clonePhases(t, "spare3", "agent", agentPhases)
		if out := fvm(t, warmArgs...); !strings.Contains(out.stderr, spareReady) {
			t.Errorf("the spare went to a VM it cannot become: %+v", out)
		}
	})

	t.Run("off", func(t *testing.T) {
		mustFVM(t, append(warmArgs, "--spare=false")...)
		if left, _ := filepath.Glob(filepath.Join(layout.VMsDir(), ".creating-*")); len(left) > 0 {
			t.Errorf("a spare stayed: %v", left)
		}
		if r := fvm(t, warmArgs...); strings.Contains(r.stderr, spareReady) {
			t.Errorf("a spare is ready after --spare=false: %+v", r)
		}
		if _, err := os.Stat(filepath.Join(layout.DataDir, "spares")); err == nil {
			if left, _ := filepath.Glob(filepath.Join(layout.DataDir, "spares", "*")); len(left) > 0 {
				t.Errorf("the wish stayed: %v", left)
			}
		}
	})
}

// waitSpare waits until the snapshot of warmArgs has its spare again.
func waitSpare(t *testing.T, warmArgs []string) {
	t.Helper()
	for end := time.Now().Add(3 * time.Minute); ; time.Sleep(2 * time.Second) {
		r := fvm(t, warmArgs...)
		if strings.Contains(r.stderr, spareReady) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("no spare after 3 minutes: %+v", r)
		}
	}
}
