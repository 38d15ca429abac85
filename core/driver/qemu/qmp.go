package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultQMPTimeout bounds a QMP exchange when the context has no deadline.
const DefaultQMPTimeout = 5 * time.Second

// QMP is a connection to a QEMU monitor in control mode (QEMU Machine Protocol:
// JSON objects, one per line). QEMU serves one client at a time, so callers keep
// connections short: dial, execute, close.
type QMP struct {
	conn net.Conn
	r    *bufio.Reader
	id   int
}

// QMPError is an error answer from QEMU.
type QMPError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *QMPError) Error() string { return e.Class + ": " + e.Desc }

// DialQMP connects to the socket, reads the greeting and leaves capabilities
// negotiation mode, so that commands can be executed.
func DialQMP(ctx context.Context, socket string) (*QMP, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	q := &QMP{conn: conn, r: bufio.NewReader(conn)}
	stop := q.bind(ctx)
	defer stop()
	var greeting struct {
		QMP *json.RawMessage `json:"QMP"`
	}
	if err := q.read(&greeting); err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", ctxErr(ctx, err))
	}
	if greeting.QMP == nil {
		conn.Close()
		return nil, errors.New("qmp greeting: not a QMP server")
	}
	if err := q.exchange(ctx, "qmp_capabilities", nil, nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// Execute runs a command; out, if not nil, receives the "return" value.
func (q *QMP) Execute(ctx context.Context, command string, args, out any) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	stop := q.bind(ctx)
	defer stop()
	return q.exchange(ctx, command, args, out)
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }

// bind makes ctx's deadline and cancellation interrupt blocked reads and writes.
func (q *QMP) bind(ctx context.Context) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { q.conn.SetDeadline(time.Now()) })
}

func (q *QMP) exchange(ctx context.Context, command string, args, out any) error {
	q.id++
	req := map[string]any{"execute": command, "id": q.id}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("qmp %s: %w", command, ctxErr(ctx, err))
	}
	return q.await(ctx, command, out)
}

// await reads until the answer to the last command sent (q.id).
func (q *QMP) await(ctx context.Context, command string, out any) error {
	for {
		var resp struct {
			ID     *int            `json:"id"`
			Event  string          `json:"event"`
			Return json.RawMessage `json:"return"`
			Error  *QMPError       `json:"error"`
		}
		if err := q.read(&resp); err != nil {
			return fmt.Errorf("qmp %s: %w", command, ctxErr(ctx, err))
		}
		if resp.Event != "" || resp.ID == nil || *resp.ID != q.id {
			continue // asynchronous events and stale answers
		}
		if resp.Error != nil {
			return fmt.Errorf("qmp %s: %w", command, resp.Error)
		}
		if out != nil && resp.Return != nil {
			if err := json.Unmarshal(resp.Return, out); err != nil {
				return fmt.Errorf("qmp %s: %w", command, err)
			}
		}
		return nil
	}
}

func (q *QMP) read(v any) error {
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// QueryStatus returns the run state ("running", "paused", "shutdown", ...).
func (q *QMP) QueryStatus(ctx context.Context) (string, error) {
	var st struct {
		Status string `json:"status"`
	}
	err := q.Execute(ctx, "query-status", nil, &st)
	return st.Status, err
}

// QueryName returns the name given with -name.
func (q *QMP) QueryName(ctx context.Context) (string, error) {
	var n struct {
		Name string `json:"name"`
	}
	err := q.Execute(ctx, "query-name", nil, &n)
	return n.Name, err
}

// SystemPowerdown presses the ACPI power button.
func (q *QMP) SystemPowerdown(ctx context.Context) error {
	return q.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit ends QEMU at once (no guest shutdown).
func (q *QMP) Quit(ctx context.Context) error { return q.Execute(ctx, "quit", nil, nil) }

// qmpDo dials, runs f and closes: the short connection callers should keep.
func qmpDo(ctx context.Context, socket string, f func(*QMP) error) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	q, err := DialQMP(ctx, socket)
	if err != nil {
		return err
	}
	defer q.Close()
	return f(q)
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultQMPTimeout)
}

// ctxErr reports a context's end instead of the I/O timeout it caused. Deadlines
// on the connection only ever come from the context, so an I/O timeout means the
// context's deadline passed even if its own timer has not fired yet.
func ctxErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// SendFD passes f to QEMU under name (QMP getfd, the descriptor travelling as
// SCM_RIGHTS beside the command), for a later "fd:NAME" migration URI: QEMU
// writes to a file we opened, no shell or path in between.
func (q *QMP) SendFD(ctx context.Context, name string, f *os.File) error {
	uc, ok := q.conn.(*net.UnixConn)
	if !ok {
		return errors.New("qmp getfd: not a Unix socket")
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	stop := q.bind(ctx)
	defer stop()
	q.id++
	b, err := json.Marshal(map[string]any{"execute": "getfd", "arguments": map[string]string{"fdname": name}, "id": q.id})
	if err != nil {
		return err
	}
	if _, _, err := uc.WriteMsgUnix(append(b, '\n'), unix.UnixRights(int(f.Fd())), nil); err != nil {
		return fmt.Errorf("qmp getfd: %w", ctxErr(ctx, err))
	}
	return q.await(ctx, "getfd", nil)
}

// MigrationStatus is query-migrate's answer, as far as fvm reads it.
type MigrationStatus struct {
	Status   string `json:"status"` // setup, active, completed, failed, cancelled...
	ErrorMsg string `json:"error-desc"`
	Downtime int64  `json:"downtime"` // ms the guest was stopped, once completed
	RAM      *struct {
		Transferred int64 `json:"transferred"`
		Total       int64 `json:"total"`
	} `json:"ram"`
}

// QueryMigrate reports the progress of an outgoing or incoming migration.
func (q *QMP) QueryMigrate(ctx context.Context) (MigrationStatus, error) {
	var st MigrationStatus
	err := q.Execute(ctx, "query-migrate", nil, &st)
	return st, err
}

// HMP runs a human monitor command through QMP and returns its text; QEMU
// reports some failures (hostfwd_add's) only in that text.
func (q *QMP) HMP(ctx context.Context, cmd string) (string, error) {
	var out string
	err := q.Execute(ctx, "human-monitor-command", map[string]string{"command-line": cmd}, &out)
	return out, err
}
