package vz

import (
	"errors"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
)

// isOurHelper reports whether pid is alive and is the helper started for the
// instance in dir: the same executable, with HelperRunArgs(dir) on its command
// line. A pid file alone proves nothing: pids are reused.
func isOurHelper(pid int, helper, dir string) bool {
	if pid <= 0 || helper == "" {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	exe, args, err := proc.Info(pid)
	if err != nil || !proc.SamePath(exe, helper) {
		return false
	}
	want := HelperRunArgs(dir)
	for i := 0; i+len(want) <= len(args); i++ {
		if slices.Equal(args[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// removeStale deletes the pid file and control socket a dead helper left,
// unless a live helper of this instance (another than pid) owns them by now.
func removeStale(p paths, helper string, pid int) error {
	if cur := proc.ReadPIDFile(p.pid); cur != 0 && cur != pid && isOurHelper(cur, helper, p.dir) {
		return nil
	}
	return proc.RemoveFiles(p.pid, p.sock)
}

// logTail returns the last few lines of the helper's log on one line: its
// own words are the best explanation of a failed start.
func logTail(logPath string) string {
	b, err := store.ReadTail(logPath, 64<<10)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	lines = lines[max(0, len(lines)-3):]
	s := strings.Join(lines, "; ")
	if len(s) > 800 {
		s = "..." + s[len(s)-800:]
	}
	return s
}
