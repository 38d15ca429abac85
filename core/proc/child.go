package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"
)

// Child is a hypervisor process this host started, so it must also reap it
// (one adopted from an earlier host has none).
type Child struct {
	Cmd    *exec.Cmd
	Exited chan struct{} // closed once Wait returned
	Err    error         // Wait's result, valid after Exited
}

// StartChild starts cmd and reaps it in the background.
func StartChild(cmd *exec.Cmd) (*Child, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{Cmd: cmd, Exited: make(chan struct{})}
	go func() {
		c.Err = cmd.Wait()
		close(c.Exited)
	}()
	return c, nil
}

// KillAndWait sends SIGKILL to pid (what names it in errors; ours says the pid
// is still the process meant, so a reused pid is never killed) and waits up to
// wait for gone to close.
func KillAndWait(pid int, what string, ours bool, gone <-chan struct{}, wait time.Duration) error {
	if ours {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("kill %s (pid %d): %w", what, pid, err)
		}
	}
	select {
	case <-gone:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%s (pid %d) is still there %s after SIGKILL", what, pid, wait)
	}
}

// RemoveFiles deletes files, ignoring those already gone.
func RemoveFiles(files ...string) error {
	var errs []error
	for _, f := range files {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
