package console

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeSerial is a hypervisor's serial port: a socket server taking one client
// at a time, and a log of everything the guest writes, written after the
// socket as QEMU does.
type fakeSerial struct {
	t            *testing.T
	socket, log  string
	mu           sync.Mutex
	conn         net.Conn
	input        []byte
	conns, drops int
	changed      chan struct{}
}

func newFakeSerial(t *testing.T) *fakeSerial {
	t.Helper()
	dir, err := os.MkdirTemp("", "fc") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeSerial{t: t, socket: filepath.Join(dir, "serial.sock"), log: filepath.Join(dir, "serial.log"), changed: make(chan struct{}, 100)}
	if err := os.WriteFile(f.log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", f.socket)
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
			f.mu.Lock()
			f.conn = c
			f.conns++
			f.mu.Unlock()
			f.changed <- struct{}{}
			buf := make([]byte, 1024)
			for { // one client at a time, as QEMU's chardev socket server
				n, err := c.Read(buf)
				f.mu.Lock()
				f.input = append(f.input, buf[:n]...)
				f.mu.Unlock()
				f.changed <- struct{}{}
				if err != nil {
					break
				}
			}
			f.mu.Lock()
			f.conn = nil
			f.drops++
			f.mu.Unlock()
			c.Close()
			f.changed <- struct{}{}
		}
	}()
	return f
}

// guest writes s as the guest's output: to the client, if any, then the log.
func (f *fakeSerial) guest(s string) {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c != nil {
		c.Write([]byte(s))
	}
	lf, err := os.OpenFile(f.log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	lf.WriteString(s)
	lf.Close()
}

// waitFor waits until cond holds (checked under f.mu).
func (f *fakeSerial) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-f.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			f.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// readUntil reads r until its output contains want.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var out []byte
		buf := make([]byte, 256)
		for {
			n, err := r.Read(buf)
			out = append(out, buf[:n]...)
			if containsStr(string(out), want) || err != nil {
				got <- string(out)
				return
			}
		}
	}()
	select {
	case s := <-got:
		if !containsStr(s, want) {
			t.Fatalf("read %q, want %q in it", s, want)
		}
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out reading %q", want)
		return ""
	}
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// fakeRFB is a VNC server on a Unix socket: it greets as RFB 3.8 and echoes.
func fakeRFB(t *testing.T) (socket string, closed chan struct{}) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket = filepath.Join(dir, "vnc.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	closed = make(chan struct{}, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.Write([]byte("RFB 003.008\n"))
				io.Copy(c, c)
				c.Close()
				closed <- struct{}{}
			}()
		}
	}()
	return socket, closed
}
