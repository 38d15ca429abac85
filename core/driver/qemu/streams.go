package qemu

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
)

// The VM's streams, as the seam hands them to the host: QEMU serves the
// serial port and the screen on Unix sockets in the instance directory, and
// logs the serial port to store.SerialLog.

// OpenLog opens the serial log (driver.LogSerial) or QEMU's own log (LogFile).
func (d *Driver) OpenLog(inst *store.Instance, name string) (driver.LogFile, error) {
	return driver.OpenLocalLog(inst, name, LogFile)
}

// DialSerial connects to the serial port (one client at a time: the host's
// console.Mux shares it).
func (m *Machine) DialSerial(ctx context.Context) (net.Conn, error) {
	return dialUnix(ctx, m.p.serialSock, "serial console")
}

// DialVNC connects to the display, served as VNC.
func (m *Machine) DialVNC(ctx context.Context) (net.Conn, error) {
	return dialUnix(ctx, m.p.vnc, "display")
}

func dialUnix(ctx context.Context, path, what string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, filepath.Base(path), err)
	}
	return c, nil
}

var (
	_ driver.SerialPort = (*Machine)(nil)
	_ driver.VNCDisplay = (*Machine)(nil)
)
