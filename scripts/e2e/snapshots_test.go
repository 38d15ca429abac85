//go:build e2e

package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// TestSnapshots: one VM through its snapshots and forks, in order (each cold
// boot under TCG costs a minute or more; the VM starts from the image's warm
// snapshot). A snapshot with memory brings back a file, a running process
// and a tmpfs file exactly as they were; two clones forked from the running
// VM at once are each their own machine (the parent's key refused) with the
// parent's files and a copy of its process, and the parent goes on; a clone
// of a stopped VM boots cold; with the parent removed its clones keep their
// layers and boot again.
func TestSnapshots(t *testing.T) {
	ensureImage(t)
	mustFVM(t, "image", "warm", "debian-local", "--memory", "1G") // waits for the build TestVMLifecycle started
	const parent = "snap1"
	t.Cleanup(func() { fvm(t, "rm", "-f", parent, "fork1", "fork2", "cold3") })
	t0 := time.Now()
	echoPort := freePort(t)
	mustFVM(t, "run", "-d", "--wait", "debian-local", parent, "--memory", "1G", "-p", strconv.Itoa(echoPort)+":7777")
	t.Logf("MEASURE parent run -d → cloud-init done: %s", time.Since(t0))
	parentKey, err := os.ReadFile(filepath.Join(layout.InstanceDir(parent), store.HostKeyPubFile))
	if err != nil {
		t.Fatal(err)
	}
	// A file, a background process and a tmpfs file: what a restore must bring back.
	pid := strings.TrimSpace(mustFVM(t, "exec", parent, "--", `echo disk-1 > ~/file; sync; setsid -f sh -c 'echo $$ > /dev/shm/sleeper; exec sleep 100000' < /dev/null > /dev/null 2>&1; sleep 0.5; echo ram-1 > /dev/shm/marker; cat /dev/shm/sleeper`))
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("sleeper pid %q", pid)
	}
	state := func(t *testing.T, name string) string {
		t.Helper()
		return strings.TrimSpace(mustFVM(t, "exec", name, "--", "cat ~/file /dev/shm/marker; if kill -0 "+pid+" 2>/dev/null && grep -q sleep /proc/"+pid+"/cmdline; then echo alive; else echo gone; fi"))
	}

	t.Run("restore", func(t *testing.T) {
		// A connection into the guest through a -p forward lives through the
		// snapshot, echoing all along.
		mustFVM(t, "exec", parent, "--", echoServer(7777))
		probe := dialEcho(t, echoPort)
		probe.start()
		time.Sleep(200 * time.Millisecond)
		r := fvm(t, "snapshot", "create", parent, "s1")
		time.Sleep(200 * time.Millisecond)
		worst, err := probe.finish()
		if err != nil {
			t.Errorf("a connection through a -p forward to a guest process, during snapshot create: %v", err)
		} else {
			t.Logf("MEASURE longest echo round trip through a -p forward during snapshot create: %s", worst.Round(time.Millisecond))
		}
		if r.code != 0 || !strings.Contains(r.stderr, "disk and memory") {
			t.Fatalf("snapshot create: %+v", r)
		}
		if m := regexp.MustCompile(`paused for ([0-9.]+m?s)`).FindStringSubmatch(r.stderr); m != nil {
			t.Logf("MEASURE snapshot pause (1 GiB guest): %s", m[1])
		} else {
			t.Errorf("snapshot create did not report the pause: %q", r.stderr)
		}
		if got := state(t, parent); got != "disk-1\nram-1\nalive" {
			t.Fatalf("the VM after its snapshot: %q", got)
		}
		mustFVM(t, "exec", parent, "--", "echo disk-2 > ~/file; sync; kill "+pid+"; echo ram-2 > /dev/shm/marker")
		if got := state(t, parent); got != "disk-2\nram-2\ngone" {
			t.Fatalf("the changes did not take: %q", got)
		}
		if r := fvm(t, "snapshot", "restore", parent, "s1"); r.code == 0 || !strings.Contains(r.stderr, "--force") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Fatalf("restore of a running VM without --force: %+v", r)
		}
		time.Sleep(3 * time.Second) // a guest clock left alone would now be behind
		t0 := time.Now()
		r = fvm(t, "snapshot", "restore", "--force", parent, "s1")
		if r.code != 0 || !strings.Contains(r.stderr, "Restored "+parent) || !strings.Contains(r.stderr, "discarded") {
			t.Fatalf("restore: %+v", r)
		}
		t.Logf("MEASURE snapshot restore → SSH ready: %s", time.Since(t0))
		if got := state(t, parent); got != "disk-1\nram-1\nalive" {
			t.Fatalf("after restore: %q, want the file, the tmpfs file and the process as at the snapshot", got)
		}
		out := strings.TrimSpace(mustFVM(t, "exec", parent, "--", "date +%s.%N"))
		guest, _ := strconv.ParseFloat(out, 64)
		if skew := guest - float64(time.Now().UnixNano())/1e9; skew < -2 || skew > 2 {
			t.Errorf("guest clock %+.2f s off after restore", skew)
		}
		if ls := mustFVM(t, "snapshot", "ls", parent); !strings.Contains(ls, "s1") || !strings.Contains(ls, "yes") {
			t.Errorf("snapshot ls:\n%s", ls)
		}
	})

	forks := []string{"fork1", "fork2"}
	ids := map[string][]string{} // hostname, machine id, host key, VM generation ID
	t.Run("fork-running", func(t *testing.T) {
		var wg sync.WaitGroup
		res := make([]result, len(forks))
		took := make([]time.Duration, len(forks))
		for i, n := range forks {
			wg.Go(func() {
				t0 := time.Now()
				res[i] = fvm(t, "clone", parent, n)
				took[i] = time.Since(t0)
			})
		}
		wg.Wait()
		for i, r := range res {
			if r.code != 0 || !strings.Contains(r.stderr, "Cloned "+forks[i]) || strings.Contains(r.stderr, "booted cold") {
				t.Fatalf("clone %s: %+v", forks[i], r)
			}
			t.Logf("MEASURE fork of a running VM → SSH ready (two at once): %s", took[i])
		}
		for _, n := range append([]string{parent}, forks...) {
			out := strings.Fields(mustFVM(t, "exec", n, "--", "hostname; cat /etc/machine-id; sudo cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub"))
			if len(out) != 3 || out[0] != n {
				t.Fatalf("%s: identity %q", n, out)
			}
			ids[n] = out
			var facts struct{ VMGenID string }
			store.ReadJSON(filepath.Join(layout.InstanceDir(n), qemu.FactsFile), &facts)
			ids[n] = append(ids[n], facts.VMGenID)
		}
		for _, n := range forks {
			for k, what := range []string{"hostname", "machine-id", "host key", "VM generation ID"} {
				for _, o := range append([]string{parent}, forks...) {
					if o != n && ids[o][k] == ids[n][k] {
						t.Errorf("%s and %s share their %s (%s)", n, o, what, ids[n][k])
					}
				}
			}
			if err := dialWithHostKey(t, n, string(parentKey)); !errors.Is(err, sshx.ErrHostKeyMismatch) {
				t.Errorf("%s with the parent's host key pinned: %v, want a mismatch", n, err)
			}
			// The parent's files and a copy of its running process.
			if got := state(t, n); got != "disk-1\nram-1\nalive" {
				t.Errorf("%s: %q, want the parent's file, tmpfs file and process", n, got)
			}
		}
		// The parent goes on: its own identity, files, process, and a write of its own.
		if got := state(t, parent); got != "disk-1\nram-1\nalive" {
			t.Fatalf("the parent after the forks: %q", got)
		}
		mustFVM(t, "exec", parent, "--", "echo parent-only > ~/after; sync")
		for _, n := range forks {
			if r := fvm(t, "exec", n, "--", "cat ~/after"); r.code == 0 {
				t.Errorf("%s sees a file the parent wrote after the fork", n)
			}
		}
	})

	t.Run("fork-crash-restored-again", func(t *testing.T) { forkCrashRestoredAgain(t, parent) })

	t.Run("rm-parent-clones-live-on", func(t *testing.T) {
		mustFVM(t, "stop", "fork1")
		r := fvm(t, "rm", "-f", parent)
		if r.code != 0 || !strings.Contains(r.stderr, "still read") || !strings.Contains(r.stderr, "fork1") || !strings.Contains(r.stderr, "fork2") {
			t.Fatalf("rm of the parent with clones: %+v", r)
		}
		// A running clone of the removed parent goes on reading its layers.
		if got := strings.TrimSpace(mustFVM(t, "exec", "fork2", "--", "cat ~/file")); got != "disk-1" {
			t.Fatalf("fork2 after its parent's rm: %q", got)
		}
		fullOnly(t, "two cold boots side by side, about 2 minutes")
		// A clone of a stopped VM boots cold, under its own identity; a clone
		// of the removed parent boots again from its layers. Both at once.
		var wg sync.WaitGroup
		var cold, again result
		var coldTook, againTook time.Duration
		wg.Go(func() { t0 := time.Now(); cold = fvm(t, "clone", "fork1", "cold3"); coldTook = time.Since(t0) })
		wg.Go(func() { t0 := time.Now(); again = fvm(t, "restart", "fork2"); againTook = time.Since(t0) })
		wg.Wait()
		if cold.code != 0 || !strings.Contains(cold.stderr, "boots cold") || !strings.Contains(cold.stderr, "Booting cold3") {
			t.Fatalf("clone of a stopped VM: %+v", cold)
		}
		t.Logf("MEASURE clone of a stopped VM → SSH ready (cold boot): %s", coldTook)
		if again.code != 0 {
			t.Fatalf("restart of a clone whose parent is gone: %+v", again)
		}
		mustFVM(t, "wait", "--for", "ssh", "fork2")
		t.Logf("MEASURE cold restart of a clone whose parent is gone: %s", againTook)
		out := strings.Fields(mustFVM(t, "exec", "cold3", "--", "hostname; cat /etc/machine-id; cat ~/file"))
		if len(out) != 3 || out[0] != "cold3" || out[2] != "disk-1" {
			t.Fatalf("cold clone: %q", out)
		}
		if len(ids["fork1"]) > 1 && out[1] == ids["fork1"][1] {
			t.Errorf("the cold clone kept its source's machine id %s", out[1])
		}
		if got := strings.TrimSpace(mustFVM(t, "exec", "fork2", "--", "hostname; cat ~/file")); got != "fork2\ndisk-1" {
			t.Fatalf("fork2 after a cold restart: %q", got)
		}
	})
}
