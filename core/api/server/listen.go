package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// ErrHostRunning means another host already serves the socket.
var ErrHostRunning = errors.New("another fvm host is already running")

// Listen opens the Unix socket with mode 0600. A socket left by a dead host is
// removed; a live one is refused with ErrHostRunning.
func Listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w on %s", ErrHostRunning, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	// The umask makes the socket private from its creation, not after a chmod race.
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
