package console

import (
	"context"
	"net"
	"os"
)

// unixDial dials the Unix socket at path (a hypervisor's, in the tests).
func unixDial(path string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}

// fileLog opens the log at path.
func fileLog(path string) func() (LogFile, error) {
	return func() (LogFile, error) { return os.Open(path) }
}
