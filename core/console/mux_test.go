package console

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestTailOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	for _, tt := range []struct {
		log  string
		n    int
		want string // what the offset leaves
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 1, "c\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 9, "a\nb\nc\n"},
		{"a\nb\nweb1 login: ", 1, "web1 login: "},
		{"a\nb\nweb1 login: ", 2, "b\nweb1 login: "},
		{"a\nb\n", 0, ""},
		{"a\nb\n", -1, "a\nb\n"},
		{"", 5, ""},
		{"\n\n\n", 2, "\n\n"},
	} {
		os.WriteFile(path, []byte(tt.log), 0o644)
		f, _ := os.Open(path)
		off, err := tailOffset(f, tt.n)
		f.Close()
		if err != nil || tt.log[off:] != tt.want {
			t.Errorf("tail %d of %q: %q (%v), want %q", tt.n, tt.log, tt.log[off:], err, tt.want)
		}
	}
	// A long log is cut at maxTail, at a line boundary.
	long := make([]byte, 0, maxTail+100)
	for len(long) < maxTail+50 {
		long = append(long, "0123456789abcdef\n"...)
	}
	os.WriteFile(path, long, 0o644)
	f, _ := os.Open(path)
	defer f.Close()
	off, err := tailOffset(f, -1)
	if err != nil || int64(len(long))-off > maxTail || long[off-1] != '\n' {
		t.Errorf("long log: offset %d of %d (%v)", off, len(long), err)
	}
}

func TestMuxSessions(t *testing.T) {
	f := newFakeSerial(t)
	f.guest("[    0.000000] Linux version 6.1\r\nDebian GNU/Linux 12 web1 ttyS0\r\n\r\nweb1 login: ")
	m := NewMux(unixDial(f.socket), fileLog(f.log))
	defer m.Close()

	a, err := m.Attach(1)
	if err != nil {
		t.Fatal(err)
	}
	if s := readUntil(t, a, "login: "); containsStr(s, "Linux version") {
		t.Errorf("tail 1 showed more than the last line: %q", s)
	}
	b, err := m.Attach(0)
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor("one connection", func() bool { return f.conns == 1 })

	// Both sessions see the guest's output; input from either reaches the guest.
	f.guest("root\r\nPassword: ")
	readUntil(t, a, "Password: ")
	readUntil(t, b, "Password: ")
	a.Write([]byte("from-a\r"))
	b.Write([]byte("from-b\r"))
	f.waitFor("input from both", func() bool {
		return containsStr(string(f.input), "from-a\r") && containsStr(string(f.input), "from-b\r")
	})

	// Detaching one keeps the other; detaching the last lets go of the socket.
	a.Close()
	if _, err := a.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Errorf("read after close: %v, want EOF", err)
	}
	f.guest("still here\r\n")
	readUntil(t, b, "still here")
	f.mu.Lock()
	drops := f.drops
	f.mu.Unlock()
	if m.Attached() != 1 || drops != 0 {
		t.Errorf("attached %d, drops %d after one detach", m.Attached(), drops)
	}
	b.Close()
	f.waitFor("the socket let go", func() bool { return f.drops == 1 && f.conn == nil })

	// Output written while nobody is attached is in the log: a new session's tail shows it.
	f.guest("while detached\r\n")
	c, err := m.Attach(2)
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, c, "while detached")
	f.waitFor("a second connection", func() bool { return f.conns == 2 })

	// Close (the VM stopped): the session reads what is left of the log, then EOF.
	f.guest("reboot: Power down\r\n")
	m.Close()
	readUntil(t, c, "Power down")
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Errorf("read after the mux closed: %v, want EOF", err)
	}
	if _, err := m.Attach(0); !errors.Is(err, ErrClosed) {
		t.Errorf("attach after close: %v, want ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("write after the mux closed succeeded")
	}
	c.Close()
}

func TestMuxAttachFails(t *testing.T) {
	f := newFakeSerial(t)
	m := NewMux(unixDial(filepath.Join(t.TempDir(), "none.sock")), fileLog(f.log))
	if _, err := m.Attach(0); err == nil {
		t.Error("attach without a socket succeeded")
	}
	m = NewMux(unixDial(f.socket), fileLog(filepath.Join(t.TempDir(), "none.log")))
	if _, err := m.Attach(0); err == nil {
		t.Error("attach without a log succeeded")
	}
}
