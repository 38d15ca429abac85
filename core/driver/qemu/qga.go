package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/driver"
)

// The QEMU guest agent (qemu-guest-agent in the guest) answers on a
// virtio-serial port that QEMU exposes as a Unix socket in the VM directory.
// fvm uses it to set the guest's clock right after a resume, before anything
// else runs in the guest (a restored guest's clock is as old as its state),
// and to re-identify a warm clone without waiting for SSH (agent.go).
//
// The socket takes one client at a time, and the channel carries whatever an
// earlier client left unread: every session starts with a
// guest-sync-delimited handshake, which flushes it.

// qgaConn is one session with the guest agent.
type qgaConn struct {
	conn net.Conn
	r    *bufio.Reader
	stop func() bool
}

// dialQGA connects to the agent's socket and synchronises with it. An agent
// that does not answer (none runs in the guest, or it is stopped) is
// driver.ErrNoAgent.
func dialQGA(ctx context.Context, socket string) (*qgaConn, error) {
	if socket == "" {
		return nil, fmt.Errorf("%w: no guest agent socket", driver.ErrNoAgent)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrNoAgent, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c := &qgaConn{conn: conn, r: bufio.NewReader(conn)}
	c.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	id := rand.Int64N(1 << 40)
	if err := c.send("guest-sync-delimited", map[string]int64{"id": id}); err != nil {
		c.Close()
		return nil, err
	}
	// The answer follows a 0xFF byte; anything before it is stale.
	if _, err := c.r.ReadBytes(0xFF); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w (is qemu-guest-agent running in the guest?): %w", driver.ErrNoAgent, err)
	}
	for {
		var resp struct {
			Return *int64 `json:"return"`
		}
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("%w: sync: %w", driver.ErrNoAgent, err)
		}
		if json.Unmarshal(line, &resp) == nil && resp.Return != nil && *resp.Return == id {
			return c, nil
		}
	}
}

func (c *qgaConn) Close() error {
	c.stop()
	return c.conn.Close()
}

// call runs one command and decodes its return value into out (if not nil).
func (c *qgaConn) call(command string, args, out any) error {
	if err := c.send(command, args); err != nil {
		return err
	}
	line, err := c.r.ReadBytes('\n')
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

func (c *qgaConn) send(command string, args any) error {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("guest agent %s: %w", command, err)
	}
	return nil
}

// qgaCall runs one guest-agent command in a session of its own.
func qgaCall(ctx context.Context, socket, command string, args, out any) error {
	c, err := dialQGA(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.call(command, args, out)
}

// setGuestTime sets the guest's system clock to now (and, through the guest
// agent, the RTC from it). The agent sets the system clock first, then runs
// hwclock for the RTC: a guest without hwclock (Debian 13 keeps it in
// util-linux-extra, which a minimal system lacks) fails only that second
// step, and its clock is set.
func setGuestTime(ctx context.Context, socket string, now time.Time) error {
	if socket == "" {
		return errors.New("guest agent: no socket")
	}
	err := qgaCall(ctx, socket, "guest-set-time", map[string]int64{"time": now.UnixNano()}, nil)
	var qe *QMPError
	if errors.As(err, &qe) && strings.Contains(qe.Desc, "hardware clock") {
		return nil
	}
	return err
}
