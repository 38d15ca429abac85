package console

import (
	"bytes"
	"io"
	"testing"
)

// systemd 257 before a serial getty: a defensive reset, then its size probe.
const systemdProbe = "\x1b[!p\x1b]104\x07\x1b[?7h\x1b[6n\x1b[32766;32766H\x1b[6n"

func TestStripQueries(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain text\r\n", "plain text\r\n"},
		{systemdProbe + "\r\nweb1 login: ", "\x1b[!p\x1b]104\x07\x1b[?7h\x1b[32766;32766H\r\nweb1 login: "},
		{"\x1b[?6n\x1b[5n\x1b[c\x1b[0c\x1b[>c\x1b[=c\x1b[x", ""},
		{"\x1b[>q\x1b[>0q\x1b[?u\x1b[?2026$p\x1b[18t\x1b[14;2t", ""},
		{"\x1b[2 q\x1b[8;24;80t\x1b[22;0t\x1b[1;31mred\x1b[0m", "\x1b[2 q\x1b[8;24;80t\x1b[22;0t\x1b[1;31mred\x1b[0m"},
		{"a\x1b]11;?\x07b\x1b]4;1;?\x1b\\c\x1b]0;title\x07d", "abc\x1b]0;title\x07d"},
		{"\x1bP$qm\x1b\\\x1bP+q544e\x1b\\\x1bPq#0\x1b\\", "\x1bPq#0\x1b\\"},
		{"\x1bZ\x1bc\x05x", "\x1bcx"},
		{"cut \x1b[6", "cut \x1b[6"},       // unterminated: kept (the live part ends it)
		{"cut \x1b]11;?", "cut \x1b]11;?"}, // unterminated string: kept
		{"end\x1b", "end\x1b"},
		{"\x1b[1\x01n", "\x1b[1\x01n"}, // malformed CSI: ends at the bad byte
		{"é ✓ \x1b[6n ok", "é ✓  ok"},
	} {
		if got := string(stripQueries([]byte(tt.in))); got != tt.want {
			t.Errorf("stripQueries(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzStripQueries(f *testing.F) {
	for _, s := range []string{systemdProbe, "a\x1b]11;?\x07b", "\x1bP$qm\x1b\\", "\x1b[", "\x1b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out := stripQueries(b)
		if len(out) > len(b) {
			t.Fatalf("grew: %q → %q", b, out)
		}
		if bytes.IndexByte(b, esc) < 0 && bytes.IndexByte(b, 0x05) < 0 && !bytes.Equal(out, b) {
			t.Fatalf("text without escapes changed: %q → %q", b, out)
		}
	})
}

// A session's replay of earlier output drops the terminal queries in it (a
// terminal would answer them at the login prompt); live output keeps them.
func TestMuxReplayDropsQueries(t *testing.T) {
	f := newFakeSerial(t)
	f.guest("Debian GNU/Linux 13 web1 ttyS0\r\n" + systemdProbe + "\r\nweb1 login: ")
	m := NewMux(unixDial(f.socket), fileLog(f.log))
	defer m.Close()
	s, err := m.Attach(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := readUntil(t, s, "login: "); bytes.Contains([]byte(got), []byte("\x1b[6n")) || !bytes.Contains([]byte(got), []byte("\x1b[32766;32766H")) {
		t.Errorf("replay %q: want the size probe's queries gone and the rest kept", got)
	}
	f.guest("\x1b[6n live")
	// A session closed with earlier output unread reads EOF, not the rest.
	c, err := m.Attach(-1)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n, err := c.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Errorf("read after close with a replay pending: %d, %v; want EOF", n, err)
	}
	if got := readUntil(t, s, "live"); !bytes.Contains([]byte(got), []byte("\x1b[6n")) {
		t.Errorf("live output %q lost its query", got)
	}
}
