package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// fakeAgent serves the guest agent's protocol on sock: the sync handshake,
// then guest-exec (pid 7) and guest-exec-status (running twice, then exited
// with the output and status given).
func fakeAgent(t *testing.T, sock string, out string, status int) {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	polls := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadBytes('\n')
					if err != nil {
						return
					}
					var req struct {
						Execute   string          `json:"execute"`
						Arguments json.RawMessage `json:"arguments"`
					}
					json.Unmarshal(line, &req)
					var ret any
					switch req.Execute {
					case "guest-sync-delimited":
						var a struct{ ID int64 }
						json.Unmarshal(req.Arguments, &a)
						c.Write([]byte{0xFF})
						ret = a.ID
					case "guest-exec":
						ret = map[string]int{"pid": 7}
					case "guest-exec-status":
						polls++
						if polls < 3 {
							ret = map[string]any{"exited": false}
						} else {
							ret = map[string]any{"exited": true, "exitcode": status, "out-data": []byte(out)}
						}
					}
					b, _ := json.Marshal(map[string]any{"return": ret})
					c.Write(append(b, '\n'))
				}
			}()
		}
	}()
}

func TestGuestExec(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "qga.sock")
	fakeAgent(t, sock, "reidentified\n", 0)
	m := &Machine{p: paths{qga: sock}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, st, err := m.GuestExec(ctx, []string{"/bin/bash", "-c", "echo reidentified"})
	if err != nil || st != 0 || string(out) != "reidentified\n" {
		t.Fatalf("guest exec: %q %d %v", out, st, err)
	}
}
