package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"
)

// The QEMU guest agent (qemu-guest-agent in the guest) answers on a
// virtio-serial port that QEMU exposes as a Unix socket in the VM directory.
// fvm uses it to set the guest's clock right after a resume, before anything
// else runs in the guest: a restored guest's clock is as old as its state.

// qgaCall runs one guest-agent command after a guest-sync-delimited handshake,
// which flushes whatever an earlier client left in the channel.
func qgaCall(ctx context.Context, socket, command string, args, out any) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("guest agent: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	r := bufio.NewReader(conn)
	id := rand.Int64N(1 << 40)
	if err := qgaSend(conn, "guest-sync-delimited", map[string]int64{"id": id}); err != nil {
		return err
	}
	// The answer follows a 0xFF byte; anything before it is stale.
	if _, err := r.ReadBytes(0xFF); err != nil {
		return fmt.Errorf("guest agent: no answer (is qemu-guest-agent running in the guest?): %w", err)
	}
	for {
		var resp struct {
			Return *int64 `json:"return"`
		}
		line, err := r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("guest agent sync: %w", err)
		}
		if json.Unmarshal(line, &resp) == nil && resp.Return != nil && *resp.Return == id {
			break
		}
	}
	if err := qgaSend(conn, command, args); err != nil {
		return err
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("guest agent %s: %w", command, err)
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
		Error  *QMPError       `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("guest agent %s: %w", command, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("guest agent %s: %w", command, resp.Error)
	}
	if out != nil && resp.Return != nil {
		return json.Unmarshal(resp.Return, out)
	}
	return nil
}

func qgaSend(conn net.Conn, command string, args any) error {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("guest agent %s: %w", command, err)
	}
	return nil
}

// setGuestTime sets the guest's system clock to now (and, through the guest
// agent, the RTC from it).
func setGuestTime(ctx context.Context, socket string, now time.Time) error {
	if socket == "" {
		return errors.New("guest agent: no socket")
	}
	return qgaCall(ctx, socket, "guest-set-time", map[string]int64{"time": now.UnixNano()}, nil)
}

// GuestExec runs argv in the guest as root through the guest agent
// (guest-exec, then guest-exec-status until it exited) and returns its
// standard output and error, joined, and its exit status (driver.GuestExec).
func (m *Machine) GuestExec(ctx context.Context, argv []string) ([]byte, int, error) {
	if len(argv) == 0 {
		return nil, -1, errors.New("guest exec: no program")
	}
	var started struct {
		PID int `json:"pid"`
	}
	if err := qgaCall(ctx, m.p.qga, "guest-exec", map[string]any{"path": argv[0], "arg": argv[1:], "capture-output": true}, &started); err != nil {
		return nil, -1, err
	}
	for {
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			Signal   int    `json:"signal"`
			OutData  []byte `json:"out-data"` // base64 in JSON
			ErrData  []byte `json:"err-data"`
		}
		if err := qgaCall(ctx, m.p.qga, "guest-exec-status", map[string]any{"pid": started.PID}, &st); err != nil {
			return nil, -1, err
		}
		if st.Exited {
			code := st.ExitCode
			if st.Signal != 0 {
				code = 128 + st.Signal
			}
			return append(st.OutData, st.ErrData...), code, nil
		}
		select {
		case <-ctx.Done():
			return nil, -1, fmt.Errorf("guest exec %s: %w", argv[0], ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
