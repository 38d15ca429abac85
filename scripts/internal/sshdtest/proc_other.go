//go:build !linux

package sshdtest

import "syscall"

// procAttr: sshd in a group of its own (Stop ends it and its sessions).
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
