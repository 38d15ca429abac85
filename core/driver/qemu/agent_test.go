package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
)

// fakeAgent answers like qemu-ga on a Unix socket: guest-sync-delimited,
// guest-exec (recording what it was given) and guest-exec-status (running
// for polls calls, then exited with status and output). Stale bytes of an
// earlier client come before every sync answer.
type fakeAgent struct {
	polls   int
	status  int
	got     chan map[string]json.RawMessage // guest-exec's arguments
	setTime chan int64                      // guest-set-time's time
	timeErr string                          // guest-set-time's error, if any
}

func (f *fakeAgent) serve(t *testing.T, socket string) {
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go f.session(conn)
		}
	}()
}

func (f *fakeAgent) session(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	w := func(v any) { b, _ := json.Marshal(v); conn.Write(append(b, '\n')) }
	polled := 0
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var req struct {
			Execute   string                     `json:"execute"`
			Arguments map[string]json.RawMessage `json:"arguments"`
		}
		json.Unmarshal(line, &req)
		switch req.Execute {
		case "guest-sync-delimited":
			var id int64
			json.Unmarshal(req.Arguments["id"], &id)
			conn.Write([]byte(`{"return": {"stale": 1}}` + "\n\xff"))
			w(map[string]any{"return": id})
		case "guest-exec":
			f.got <- req.Arguments
			w(map[string]any{"return": map[string]any{"pid": 4242}})
		case "guest-set-time":
			var ns int64
			json.Unmarshal(req.Arguments["time"], &ns)
			f.setTime <- ns
			if f.timeErr != "" {
				w(map[string]any{"error": map[string]string{"class": "GenericError", "desc": f.timeErr}})
				continue
			}
			w(map[string]any{"return": map[string]any{}})
		case "guest-exec-status":
			if polled < f.polls {
				polled++
				w(map[string]any{"return": map[string]any{"exited": false}})
				continue
			}
			w(map[string]any{"return": map[string]any{"exited": true, "exitcode": f.status,
				"out-data": []byte("reidentified\n"), "err-data": []byte("a warning\n")}})
		default:
			w(map[string]any{"error": map[string]string{"class": "CommandNotFound", "desc": "no " + req.Execute}})
		}
	}
}

func TestGuestExec(t *testing.T) {
	dir := t.TempDir()
	f := &fakeAgent{polls: 3, status: 3, got: make(chan map[string]json.RawMessage, 1)}
	f.serve(t, filepath.Join(dir, QGASocket))
	m := &Machine{name: "vm1", p: paths{qga: filepath.Join(dir, QGASocket)}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.GuestPing(ctx); err != nil {
		t.Fatal(err)
	}
	x, err := m.GuestExec(ctx, []string{"/bin/bash", "-s"}, []byte("echo secret\n"))
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != 3 || string(x.Stdout) != "reidentified\n" || string(x.Stderr) != "a warning\n" {
		t.Fatalf("exit %+v", x)
	}
	args := <-f.got
	var path string
	var argv []string
	var input []byte
	var capture bool
	json.Unmarshal(args["path"], &path)
	json.Unmarshal(args["arg"], &argv)
	json.Unmarshal(args["input-data"], &input)
	json.Unmarshal(args["capture-output"], &capture)
	if path != "/bin/bash" || len(argv) != 1 || argv[0] != "-s" || string(input) != "echo secret\n" || !capture {
		t.Fatalf("guest-exec got %s", args)
	}
}

// GuestSetTime sends the time; a guest without hwclock (the agent sets the
// clock, then fails to run it) has its clock set all the same.
func TestGuestSetTime(t *testing.T) {
	for desc, want := range map[string]bool{
		"": true,
		"failed to set hardware clock to system time":          true,
		"Failed to set time to guest: Operation not permitted": false,
	} {
		dir := t.TempDir()
		f := &fakeAgent{setTime: make(chan int64, 1), timeErr: desc}
		f.serve(t, filepath.Join(dir, QGASocket))
		m := &Machine{name: "vm1", p: paths{qga: filepath.Join(dir, QGASocket)}}
		now := time.Now()
		err := m.GuestSetTime(context.Background(), now)
		if (err == nil) != want {
			t.Errorf("agent error %q: %v", desc, err)
		}
		if got := <-f.setTime; got != now.UnixNano() {
			t.Errorf("set %d, want %d", got, now.UnixNano())
		}
	}
}

// An agent channel nobody answers on (no agent in the guest, or a stopped
// one: QEMU still accepts the connection) is ErrNoAgent once ctx ends.
func TestGuestAgentSilent(t *testing.T) {
	socket := filepath.Join(t.TempDir(), QGASocket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	m := &Machine{name: "vm1", p: paths{qga: socket}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err = m.GuestPing(ctx)
	if !errors.Is(err, driver.ErrNoAgent) || time.Since(t0) > 5*time.Second {
		t.Fatalf("silent agent: %v after %s", err, time.Since(t0))
	}
	none := &Machine{name: "vm2", p: paths{qga: filepath.Join(t.TempDir(), "none.sock")}}
	if _, err := none.GuestExec(context.Background(), []string{"true"}, nil); !errors.Is(err, driver.ErrNoAgent) {
		t.Fatalf("no socket: %v", err)
	}
}
