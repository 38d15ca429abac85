//go:build !linux

package proc

import "os/exec"

// DiesWithHost: macOS has no parent-death signal; a helper there outlives a
// killed host, and the next host's start retries what it removes
// (store.CleanStale).
func DiesWithHost(cmd *exec.Cmd) *exec.Cmd { return cmd }
