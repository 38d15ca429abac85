package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action string
	Test   string
	Output string
}

// digest passes a `go test -json` stream through as the text `go test -v`
// would print, and remembers each test's lines to sum up its failures.
type digest struct {
	out    io.Writer
	src    string              // the tests' source dir: finds which lines are failures
	lines  map[string][]string // test ("" for the package) → its output lines
	failed []string            // tests in the order they failed
	mark   string              // lines with it are repeated in the summary, from any test
	marked []string
	srcs   map[string][]string // file → its lines
}

func newDigest(out io.Writer, src, mark string) *digest {
	return &digest{out: out, src: src, mark: mark, lines: map[string][]string{}, srcs: map[string][]string{}}
}

// feed reads the stream to its end.
func (d *digest) feed(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(d.out, sc.Text()) // not test2json's: as it came
			continue
		}
		switch e.Action {
		case "output", "build-output":
			io.WriteString(d.out, e.Output)
			if l := strings.TrimRight(e.Output, "\n"); l != "" {
				d.lines[e.Test] = append(d.lines[e.Test], l)
				if d.mark != "" && strings.Contains(l, d.mark) {
					d.marked = append(d.marked, l)
				}
			}
		case "fail":
			if e.Test != "" {
				d.failed = append(d.failed, e.Test)
			}
		}
	}
	return sc.Err()
}

// maxLine bounds a line of the summary: CI shows the end of the output only.
const maxLine = 300

// summary is a few lines per failed test (the innermost ones: a parent fails
// with its subtest) naming what failed, for the end of the output, where a
// CI log's tail shows it; "" when nothing failed.
func (d *digest) summary() string {
	var b strings.Builder
	for _, name := range d.failed {
		if d.hasFailedChild(name) {
			continue
		}
		fmt.Fprintf(&b, "FAILED %s\n", name)
		for _, l := range d.reasons(d.lines[name]) {
			fmt.Fprintf(&b, "    %s\n", clip(strings.TrimSpace(l)))
		}
	}
	for i, l := range d.lines[""] { // a test binary that timed out or panicked
		if strings.HasPrefix(l, "panic: ") {
			fmt.Fprintf(&b, "%s\n", clip(l))
			for _, m := range d.lines[""][i+1 : min(len(d.lines[""]), i+6)] {
				fmt.Fprintf(&b, "    %s\n", clip(strings.TrimSpace(m)))
			}
			break
		}
	}
	for i, l := range d.marked {
		if i == 8 {
			fmt.Fprintf(&b, "(and %d more lines with %q)\n", len(d.marked)-i, d.mark)
			break
		}
		fmt.Fprintf(&b, "%s\n", clip(strings.TrimSpace(l)))
	}
	if b.Len() == 0 {
		return ""
	}
	return "=== what failed (the whole output is above)\n" + b.String()
}

func (d *digest) hasFailedChild(name string) bool {
	for _, f := range d.failed {
		if strings.HasPrefix(f, name+"/") {
			return true
		}
	}
	return false
}

// logLine is a t.Log/t.Error line: "    file_test.go:123: text".
var logLine = regexp.MustCompile(`^\s+([\w.-]+\.go):(\d+): (.*)$`)

// A source line that fails a test calls t.Errorf, t.Fatal… or a must…
// helper (whose failure the testing package reports at its caller's line).
var (
	errorCall = regexp.MustCompile(`\.(Error|Errorf|Fatal|Fatalf)\(`)
	mustCall  = regexp.MustCompile(`\bmust\w*\(`)
)

// reasons picks a failed test's failure messages out of its lines: those
// logged from a line of the source that fails the test (with two lines of
// their continuation); its last log line when none can be told.
func (d *digest) reasons(lines []string) []string {
	var got []string
	for i, l := range lines {
		m := logLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		code := d.sourceLine(m[1], n)
		if !errorCall.MatchString(code) && (!mustCall.MatchString(code) || strings.HasPrefix(m[3], "$ ")) {
			continue // a log line, or a must… helper logging the command it ran
		}
		got = append(got, l)
		for _, c := range lines[i+1 : min(len(lines), i+3)] {
			if logLine.MatchString(c) || strings.HasPrefix(strings.TrimSpace(c), "---") || strings.HasPrefix(c, "===") {
				break
			}
			got = append(got, c)
		}
	}
	if len(got) == 0 { // a failure from a helper: most often the test's last log line
		var tail []string
		for _, l := range lines {
			if strings.HasPrefix(l, "=== ") || strings.HasPrefix(strings.TrimSpace(l), "--- ") {
				continue
			}
			if logLine.MatchString(l) {
				tail = tail[:0]
			}
			tail = append(tail, l)
		}
		got = tail[:min(len(tail), 3)]
	}
	if len(got) > 8 {
		got = append(got[:8], fmt.Sprintf("(and %d lines more above)", len(got)-8))
	}
	return got
}

// sourceLine is line n of file in the tests' source dir, "" if unknown.
func (d *digest) sourceLine(file string, n int) string {
	ls, ok := d.srcs[file]
	if !ok {
		b, _ := os.ReadFile(filepath.Join(d.src, file))
		ls = strings.Split(string(b), "\n")
		d.srcs[file] = ls
	}
	if n < 1 || n > len(ls) {
		return ""
	}
	return ls[n-1]
}

func clip(s string) string {
	if len(s) > maxLine {
		return s[:maxLine] + "…"
	}
	return s
}
