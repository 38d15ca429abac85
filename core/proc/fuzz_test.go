package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzPIDFile: a pid file's content, whatever it is, reads as 0 or as the
// positive number it holds, never a panic.
func FuzzPIDFile(f *testing.F) {
	for _, s := range []string{"1234\n", "", "-1", "0", "99999999999999999999", " 42 ", "4\x002"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "qemu.pid")
		os.WriteFile(p, b, 0o600)
		pid := ReadPIDFile(p)
		if pid < 0 {
			t.Fatalf("pid %d", pid)
		}
		if pid > 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || n != pid {
				t.Fatalf("read %d from %q", pid, b)
			}
		}
	})
}
