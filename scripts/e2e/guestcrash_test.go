//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fvmhq/fvm/core/store"
)

// A guest kernel that oopses under TCG (a cross-CPU code patch gone wrong:
// "Oops: int3") reboots (oops=panic, panic=5) and a test in the middle of
// something sees a command fail, a listener vanish, a connection cut. The
// serial log tells, but `fvm rm` deletes it: the crash is logged first, with
// a mark the end-of-run summary (scripts/testdigest) shows.
const guestCrashMark = "GUEST KERNEL CRASH"

var guestCrash = regexp.MustCompile(`Oops: |Kernel panic - not syncing|BUG: |general protection fault|soft lockup|Rebooting in \d+ seconds`)

// crashTrace are the lines of an oops that say where it happened: the
// faulting instruction, the task, the call trace's frames.
var crashTrace = regexp.MustCompile(`RIP: |Comm: |Call Trace:|Workqueue: |\+0x[0-9a-f]+/0x[0-9a-f]+`)

// crashLinesMax bounds what one serial log adds to a test's output: the
// first oops whole, with its trace, is what tells a cause.
const crashLinesMax = 40

var (
	crashMu   sync.Mutex
	crashSeen = map[string]int{} // serial log (path and inode: a VM made again has a new one) → bytes looked at
)

// noteGuestCrashes logs the kernel crash lines of the serial log of each VM
// named, in the state dir l, that it has not logged before.
func noteGuestCrashes(t testing.TB, l store.Layout, names ...string) {
	t.Helper()
	for _, n := range names {
		for _, line := range guestCrashLines(serialLogOf(l, n)) {
			t.Logf("%s in vm %s: %s", guestCrashMark, n, line)
		}
	}
}

func guestCrashLines(serialLog string) []string {
	st, err := os.Stat(serialLog)
	if err != nil {
		return nil
	}
	b, err := os.ReadFile(serialLog)
	if err != nil {
		return nil
	}
	key := fmt.Sprintf("%s@%d", serialLog, st.Sys().(*syscall.Stat_t).Ino)
	crashMu.Lock()
	from := crashSeen[key]
	crashSeen[key] = len(b)
	crashMu.Unlock()
	if from > len(b) {
		from = 0
	}
	var got []string
	for _, l := range strings.Split(string(b[from:]), "\n") {
		if len(got) < crashLinesMax && (guestCrash.MatchString(l) || len(got) > 0 && crashTrace.MatchString(l)) {
			got = append(got, strings.TrimSpace(l))
		}
	}
	return got
}

// vmNames are the arguments of `fvm rm …` that name VMs.
func vmNames(args []string) []string {
	if len(args) == 0 || args[0] != "rm" {
		return nil
	}
	var names []string
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			names = append(names, a)
		}
	}
	return names
}

// serialEnd is the last lines of a serial log on one line, for a failure
// message: where a boot stopped, in the end-of-run summary.
func serialEnd(serialLog string) string {
	b, _ := os.ReadFile(serialLog)
	var last []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			last = append(last, l)
		}
	}
	if len(last) == 0 {
		return "(serial log: empty)"
	}
	return "(serial log ends: " + strings.Join(last[max(0, len(last)-3):], " | ") + ")"
}

func serialLogOf(l store.Layout, vm string) string {
	return filepath.Join(l.InstanceDir(vm), store.SerialLog)
}

// bootFailure is what a failed boot of vm shows: where its serial log ends
// (first, for the failure's first line), the log's last lines and the host's
// log lines about it (its SSH attempts, its start phases).
func bootFailure(vm string) string {
	serial := serialLogOf(layout, vm)
	var host []string
	log, _ := os.ReadFile(filepath.Join(layout.RunDir, "daemon.log"))
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "vm="+vm+" ") || strings.Contains(l, `"`+vm+`"`) {
			host = append(host, l)
		}
	}
	if len(host) > 30 {
		host = host[len(host)-30:]
	}
	return fmt.Sprintf("%s\nserial log:\n%s\nhost log:\n%s", serialEnd(serial), tailFile(serial), strings.Join(host, "\n"))
}
