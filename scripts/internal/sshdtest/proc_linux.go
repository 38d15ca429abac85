package sshdtest

import "syscall"

// procAttr: sshd in a group of its own (Stop ends it and its sessions), and
// ended if the test dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
