package proc

import (
	"strings"

	"github.com/fvmhq/fvm/core/store"
)

// LogTail returns the last n non-empty lines of a hypervisor's log on one
// line (at most 800 bytes): its own words are the best explanation of a
// failed start. "" when the log is empty or unreadable.
func LogTail(path string, n int) string {
	b, err := store.ReadTail(path, 64<<10) // never blocks on a FIFO in its place
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	lines = lines[max(0, len(lines)-n):]
	s := strings.Join(lines, "; ")
	if len(s) > 800 {
		s = "..." + s[len(s)-800:]
	}
	return s
}

// TailSuffix is ": " and LogTail, or "" when the log has nothing.
func TailSuffix(path string, n int) string {
	if t := LogTail(path, n); t != "" {
		return ": " + t
	}
	return ""
}
