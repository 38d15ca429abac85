// Package proc is about the long-lived processes fvm starts (the host, QEMU,
// vz helpers): it keeps file descriptors a process inherited from its caller out
// of them (a lock held by a script that ran `fvm run` must not be held for days
// by the VM it started), and reads a live process's executable and arguments,
// which is how a VM's process is recognised again (Info).
package proc

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// inheritedFDs lists descriptors above stderr that lack close-on-exec. Go opens
// every descriptor of its own with close-on-exec, so these came from the caller.
func inheritedFDs() []int {
	dir := "/proc/self/fd"
	if _, err := os.Stat(dir); err != nil {
		dir = "/dev/fd" // macOS
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	return fds
}

// NoInheritFDs marks inherited descriptors close-on-exec, so children started
// from now on do not get them; this process keeps them open.
func NoInheritFDs() {
	for _, fd := range inheritedFDs() {
		unix.CloseOnExec(fd)
	}
}

// CloseInheritedFDs closes inherited descriptors; for a process (the host) that
// outlives whatever started it.
func CloseInheritedFDs() {
	for _, fd := range inheritedFDs() {
		unix.Close(fd)
	}
}
