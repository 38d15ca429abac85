//go:build !linux

package remote

import "syscall"

// sysProcAttr puts ssh in a process group of its own, so the terminal's
// Ctrl-C reaches fvm (which forwards it to the remote command) and not ssh.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

const terminate = syscall.SIGTERM
