//go:build unix

package sshx

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// WatchResize calls resize with the terminal's new size on every SIGWINCH until
// the returned stop function is called.
func WatchResize(fd int, resize func(w, h int)) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ch:
				if w, h, err := term.GetSize(fd); err == nil {
					resize(w, h)
				}
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
