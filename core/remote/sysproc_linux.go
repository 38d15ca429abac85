package remote

import "syscall"

// sysProcAttr puts ssh in a process group of its own, so the terminal's
// Ctrl-C reaches fvm (which forwards it to the remote command) and not ssh,
// and has it killed if fvm dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

const terminate = syscall.SIGTERM
