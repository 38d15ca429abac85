package vz

import (
	"errors"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/fvmhq/fvm/core/proc"
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
