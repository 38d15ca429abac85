package proc

import (
	"os/exec"
	"syscall"
)

// DiesWithHost makes a short-lived helper the host runs (qemu-img writing
// into a VM's directory) end with the host: killed with it, it would go on
// writing into a directory the next host's start is removing as half-made.
// VMs' hypervisors, which must outlive the host, never get this.
func DiesWithHost(cmd *exec.Cmd) *exec.Cmd {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return cmd
}
