//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver/qemu"
)

// suspendChecks: suspend saves the running guest and resume brings it back as
// it was (a process and a tmpfs file survive), with its clock corrected; a
// corrupt state boots cold.
func suspendChecks(t *testing.T, name string) {
	suspendResume(t, name)
	t.Run("corrupt-state-boots-cold", func(t *testing.T) {
		fullOnly(t, "a cold boot after a corrupted saved state, about 45 s (make stress corrupts state without a boot)")
		corruptStateBootsCold(t, name)
	})
}

// suspendResume is the suspend and resume half of suspendChecks.
func suspendResume(t *testing.T, name string) {
	t.Run("suspend-resume", func(t *testing.T) {
		pid := strings.TrimSpace(mustFVM(t, "exec", name, "--", `setsid -f sh -c 'echo $$ > /dev/shm/sleeper; exec sleep 100000' < /dev/null > /dev/null 2>&1; sleep 0.5; echo ram-only > /dev/shm/marker; cat /dev/shm/sleeper`))
		if _, err := strconv.Atoi(pid); err != nil {
			t.Fatalf("sleeper pid %q", pid)
		}
		t0 := time.Now()
		mustFVM(t, "suspend", name)
		t.Logf("MEASURE suspend: %s", time.Since(t0))
		dir := layout.InstanceDir(name)
		st, err := os.Stat(filepath.Join(dir, qemu.StateFile))
		if err != nil {
			t.Fatalf("no state file after suspend: %v", err)
		}
		t.Logf("MEASURE state size: %d MiB", st.Size()>>20)
		if out := mustFVM(t, "ls"); !strings.Contains(out, "suspended") {
			t.Fatalf("ls does not show suspended:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(dir, qemu.PIDFile)); err == nil {
			t.Fatal("qemu still runs after suspend")
		}
		time.Sleep(5 * time.Second) // a guest clock left alone would now be 5 s behind
		t0 = time.Now()
		r := fvm(t, "start", name)
		if r.code != 0 || !strings.Contains(r.stderr, "Resumed "+name) {
			t.Fatalf("start after suspend did not resume: %+v", r)
		}
		t.Logf("MEASURE resume → SSH ready: %s", time.Since(t0))
		if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "cat /dev/shm/marker; kill -0 "+pid+" && echo alive")); got != "ram-only\nalive" {
			t.Fatalf("after resume: %q; want the tmpfs file and the process %s", got, pid)
		}
		out := strings.TrimSpace(mustFVM(t, "exec", name, "--", "date +%s.%N"))
		guest, err := strconv.ParseFloat(out, 64)
		if err != nil {
			t.Fatalf("guest date %q", out)
		}
		skew := guest - float64(time.Now().UnixNano())/1e9
		t.Logf("MEASURE guest clock after resume: %+.2f s from the host", skew)
		if skew < -2 || skew > 2 {
			t.Fatalf("guest clock %+.2f s off after resume; want within 2 s", skew)
		}
		if _, err := os.Stat(filepath.Join(dir, qemu.StateFile)); err == nil {
			t.Fatal("the state file is still there after resume: a second start would load it again")
		}
	})
}

// corruptStateBootsCold: a state that cannot be loaded is discarded and the VM
// boots cold with a notice (the file "marker" written earlier survives).
func corruptStateBootsCold(t *testing.T, name string) {
	t.Helper()
	mustFVM(t, "suspend", name)
	state := filepath.Join(layout.InstanceDir(name), qemu.StateFile)
	if err := os.Truncate(state, 4096); err != nil {
		t.Fatal(err)
	}
	r := fvm(t, "start", name)
	if r.code != 0 || !strings.Contains(r.stderr, "could not be loaded") || !strings.Contains(r.stderr, "Booting "+name) {
		t.Fatalf("start with a corrupt state: %+v", r)
	}
	if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "cat", "marker")); got != "kept" {
		t.Fatalf("after the cold boot: %q", got)
	}
	if _, err := os.Stat(state); err == nil {
		t.Fatal("the corrupt state was kept")
	}
}
