//go:build e2e

package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// forkCrashRestoredAgain: a fork whose guest kernel crashes right after its
// restore (as TCG's multi-threaded emulation now and then makes one do) is
// restored again from its snapshot, not booted cold. The crash is real: a
// watcher in the parent, copied into the fork with its memory, asks a
// server on the host's loopback (the guest's 10.0.2.2) once the kernel logs
// a VM fork, and crashes the kernel (sysrq c) when told to: the first time
// only.
func forkCrashRestoredAgain(t *testing.T, parent string) {
	const name = "crash4"
	t.Cleanup(func() { fvm(t, "rm", "-f", name) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var asks atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			answer := "ok\n"
			if asks.Add(1) == 1 {
				answer = "crash\n"
			}
			c.Write([]byte(answer))
			c.Close()
		}
	}()
	watcher := fmt.Sprintf(`forks() { dmesg | grep -c "virtual machine fork"; }
n0=$(forks)
while sleep 0.1; do
	n=$(forks); [ "$n" = "$n0" ] && continue; n0=$n
	a=$(timeout 5 bash -c 'exec 3<>/dev/tcp/10.0.2.2/%d; cat <&3')
	[ "$a" = crash ] && echo c > /proc/sysrq-trigger
done
`, ln.Addr().(*net.TCPAddr).Port)
	stopWatcher := "sudo pkill -f [f]vm-crash-watch; true"
	mustFVM(t, "exec", parent, "--", "echo "+base64.StdEncoding.EncodeToString([]byte(watcher))+" | base64 -d > ~/fvm-crash-watch; sudo setsid -f bash ~/fvm-crash-watch < /dev/null > /dev/null 2>&1")
	defer fvm(t, "exec", parent, "--", stopWatcher)
	time.Sleep(2 * time.Second) // it counted the forks so far

	t0 := time.Now()
	r := fvm(t, "clone", parent, name)
	took := time.Since(t0)
	// The intended crash is no news for the run's summary.
	crash := guestCrashLines(serialLogOf(layout, name))
	if r.code != 0 || !strings.Contains(r.stderr, "Cloned "+name) || strings.Contains(r.stderr, "booted cold") {
		t.Fatalf("clone %s with a crash after its restore: %+v (serial: %q)", name, r, crash)
	}
	// A third ask: the second restore crashed too, on its own (an emulator's
	// crash, which fvm meets with a third restore).
	if n := asks.Load(); n < 2 || n > 3 || len(crash) == 0 {
		t.Fatalf("the fork asked %d times (want 2: the crash, then the restore again; or 3 after a crash of the emulator's) and its serial log has crash lines %q", n, crash)
	} else if n == 3 {
		t.Logf("the second restore crashed on its own; the third came up: %q", crash)
	}
	v := inspectVM(t, name)
	if v.LastStart == nil || v.LastStart.Boot != "clone" || !strings.Contains(v.LastStart.Note, "crashed") ||
		!slices.ContainsFunc(v.LastStart.Phases, func(p api.StartPhase) bool { return p.Name == "clone-crashed" }) {
		t.Fatalf("last start %+v, want a clone restored again after a crash", v.LastStart)
	}
	t.Logf("MEASURE fork with a guest kernel crash after its restore → SSH ready (restored again): %s", took)
	mustFVM(t, "exec", name, "--", stopWatcher)
	if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "hostname; cat ~/file")); got != name+"\ndisk-1" {
		t.Fatalf("the fork restored again: %q", got)
	}
	mustFVM(t, "rm", "-f", name)
}
