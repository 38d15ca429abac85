package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// listenQMP serves each connection on a Unix socket in a temp dir with h.
func listenQMP(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return sock
}

func TestQMPCommands(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	sock := listenQMP(t, func(c net.Conn) {
		// An event before every answer: the client must skip it.
		serveQMP(eventFirst{c}, func(cmd string, args json.RawMessage) (any, *QMPError) {
			mu.Lock()
			seen = append(seen, cmd)
			mu.Unlock()
			switch cmd {
			case "query-status":
				return map[string]any{"status": "paused", "running": false}, nil
			case "query-name":
				return map[string]any{"name": "web1"}, nil
			}
			return nil, nil
		}, nil)
	})
	ctx := context.Background()
	q, err := DialQMP(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st, err := q.QueryStatus(ctx); err != nil || st != "paused" {
		t.Fatalf("query-status = %q, %v", st, err)
	}
	if n, err := q.QueryName(ctx); err != nil || n != "web1" {
		t.Fatalf("query-name = %q, %v", n, err)
	}
	if err := q.SystemPowerdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(seen, " "); got != "query-status query-name system_powerdown quit" {
		t.Errorf("commands = %q", got)
	}
}

// eventFirst writes a QMP event before each line the server writes.
type eventFirst struct{ net.Conn }

func (e eventFirst) Write(b []byte) (int, error) {
	if !strings.Contains(string(b), `"QMP"`) {
		e.Conn.Write([]byte(`{"event":"RTC_CHANGE","data":{"offset":0},"timestamp":{"seconds":1,"microseconds":2}}` + "\n"))
	}
	return e.Conn.Write(b)
}

func TestQMPError(t *testing.T) {
	sock := listenQMP(t, func(c net.Conn) {
		serveQMP(c, func(string, json.RawMessage) (any, *QMPError) {
			return nil, &QMPError{"CommandNotFound", "The command nope has not been found"}
		}, nil)
	})
	err := qmpDo(context.Background(), sock, func(q *QMP) error { return q.Execute(context.Background(), "nope", nil, nil) })
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Fatalf("err = %v, want a CommandNotFound QMPError", err)
	}
}

func TestQMPTimeout(t *testing.T) {
	// Accepts and says nothing, like a QEMU busy with another client.
	sock := listenQMP(t, func(c net.Conn) { time.Sleep(5 * time.Second); c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := DialQMP(ctx, sock)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s, want about 200ms", d)
	}
}

func TestQMPCommandTimeout(t *testing.T) {
	// Greets and negotiates, then never answers a command.
	sock := listenQMP(t, func(c net.Conn) {
		serveQMP(c, func(string, json.RawMessage) (any, *QMPError) { time.Sleep(5 * time.Second); return nil, nil }, nil)
	})
	q, err := DialQMP(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := q.QueryStatus(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestQMPNotQMP(t *testing.T) {
	sock := listenQMP(t, func(c net.Conn) { c.Write([]byte("{\"hello\":1}\n")); time.Sleep(time.Second); c.Close() })
	if _, err := DialQMP(context.Background(), sock); err == nil || !strings.Contains(err.Error(), "not a QMP server") {
		t.Fatalf("err = %v", err)
	}
}

func TestQMPNoSocket(t *testing.T) {
	if _, err := DialQMP(context.Background(), filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Fatal("dial of a missing socket succeeded")
	}
}
