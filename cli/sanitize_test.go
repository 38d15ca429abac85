package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/vm"
)

func TestCleanStripsControlCharacters(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":                      "plain text",
		"bad \x1b[2J\x1b]0;owned\x07 end": `bad \x1b[2J\x1b]0;owned\x07 end`,
		"line1\nline2\ttab":               "line1\nline2\ttab",
		"bidi \u202eevil":                 `bidi \u202eevil`,
		"c1 \u009b31m":                    `c1 \x9b31m`,
		"cr\roverwrite":                   `cr\x0doverwrite`,
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := cleanLine("a\nb\tc\x1b"); got != `a\nb\tc\x1b` {
		t.Errorf("cleanLine = %q", got)
	}
}

func FuzzClean(f *testing.F) {
	f.Add("\x1b[31mred\x1b[0m")
	f.Add("ok\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range cleanLine(s) {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= 0x202a && r <= 0x202e) {
				t.Fatalf("cleanLine(%q) kept %U", s, r)
			}
		}
	})
}

func TestExposedPortWarning(t *testing.T) {
	for spec, want := range map[string]string{
		"8080:80":           "",
		"127.0.0.1:8080:80": "",
		"[::1]:8080:80":     "",
		"0.0.0.0:8080:80":   "on every network interface of this machine",
		"192.0.2.7:8080:80": "on 192.0.2.7",
	} {
		pf, err := vm.ParsePortForward(spec)
		if err != nil {
			t.Fatal(err)
		}
		got := exposedWarning(pf)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("%s: warning %q, want %q", spec, got, want)
		}
		if got != "" && !strings.Contains(got, "-p 8080:80 to keep it on this machine") {
			t.Errorf("%s: the warning does not say how to keep it local: %q", spec, got)
		}
	}
}

// TestFinalErrorIsOneLine: the CLI's last word is one line even when the
// error quotes a file name with a newline or a host's multi-line text.
func TestFinalErrorIsOneLine(t *testing.T) {
	var b strings.Builder
	printError(&b, fmt.Errorf("import %s: %w", "/tmp/evil\nfvm: all good", errors.New("not a disk\n\x1b[2J")))
	out := b.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") || strings.Contains(out, "\x1b") {
		t.Fatalf("final error %q is not one clean line", out)
	}
	if !strings.Contains(out, `/tmp/evil\nfvm: all good`) {
		t.Fatalf("final error %q lost the name", out)
	}
}
