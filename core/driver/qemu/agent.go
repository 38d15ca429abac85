package qemu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fvmhq/fvm/core/driver"
)

// The guest agent as a machine power (driver.GuestAgent): the host runs
// programs in the guest through it before SSH is up, e.g. to re-identify a
// warm clone. Programs get their input on stdin (guest-exec's input-data),
// never in a file or on a command line: what they are given (a private host
// key) is seen by no other process of the guest.

// GuestPing returns once the guest agent answers (driver.GuestAgent).
func (m *Machine) GuestPing(ctx context.Context) error {
	if err := PingAgent(ctx, m.p.qga); err != nil {
		return fmt.Errorf("vm %q: %w", m.name, err)
	}
	return nil
}

// GuestSetTime sets the guest's clock through the agent (driver.GuestAgent).
func (m *Machine) GuestSetTime(ctx context.Context, t time.Time) error {
	if err := setGuestTime(ctx, m.p.qga, t); err != nil {
		return fmt.Errorf("vm %q: set the guest's clock: %w", m.name, err)
	}
	return nil
}

// PingAgent returns once the guest agent on the QEMU chardev socket answers,
// or an error wrapping driver.ErrNoAgent (for QEMU that fvm did not start:
// the bench's bare QEMU).
func PingAgent(ctx context.Context, socket string) error {
	c, err := dialQGA(ctx, socket)
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// GuestExec runs argv in the guest through the agent, feeding it stdin, and
// waits until it exits (driver.GuestAgent).
func (m *Machine) GuestExec(ctx context.Context, argv []string, stdin []byte) (driver.GuestExit, error) {
	if len(argv) == 0 {
		return driver.GuestExit{}, errors.New("guest exec: no program")
	}
	c, err := dialQGA(ctx, m.p.qga)
	if err != nil {
		return driver.GuestExit{}, fmt.Errorf("vm %q: %w", m.name, err)
	}
	defer c.Close()
	return guestExec(ctx, c, argv, stdin)
}

// guestExec starts argv with guest-exec and polls guest-exec-status on the
// same session until it exited.
func guestExec(ctx context.Context, c *qgaConn, argv []string, stdin []byte) (driver.GuestExit, error) {
	args := map[string]any{"path": argv[0], "arg": argv[1:], "capture-output": true}
	if len(stdin) > 0 {
		args["input-data"] = stdin // []byte: base64 in JSON, as the agent wants it
	}
	var started struct {
		PID int64 `json:"pid"`
	}
	if err := c.call("guest-exec", args, &started); err != nil {
		return driver.GuestExit{}, err
	}
	// Most of what the host runs this way takes well under a second and waits
	// on it (a clone's re-identification): polled every 5-20 ms for the first
	// second (a poll costs the guest a few ms), then every 100 ms.
	start, delay := time.Now(), 5*time.Millisecond
	for {
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode *int   `json:"exitcode"`
			Signal   *int   `json:"signal"`
			Out      []byte `json:"out-data"`
			Err      []byte `json:"err-data"`
		}
		if err := c.call("guest-exec-status", map[string]int64{"pid": started.PID}, &st); err != nil {
			return driver.GuestExit{}, err
		}
		if st.Exited {
			x := driver.GuestExit{Stdout: st.Out, Stderr: st.Err}
			switch {
			case st.ExitCode != nil:
				x.Status = *st.ExitCode
			case st.Signal != nil:
				x.Status = 128 + *st.Signal
			default:
				x.Status = -1
			}
			return x, nil
		}
		select {
		case <-ctx.Done():
			return driver.GuestExit{}, fmt.Errorf("guest exec %s: still running: %w", argv[0], ctx.Err())
		case <-time.After(delay):
		}
		if delay = min(2*delay, 20*time.Millisecond); time.Since(start) > time.Second {
			delay = 100 * time.Millisecond
		}
	}
}

var _ driver.GuestAgent = (*Machine)(nil)
