package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The source the stream below claims to come from: line 3 logs, line 4 runs a
// command through a must… helper, line 5 fails.
const fakeSource = `package e2e
func TestX(t *testing.T) {
	t.Logf("MEASURE %s", d)
	mustFVM(t, "exec", name)
	t.Errorf("took %s to appear", d)
}
`

func stream(t *testing.T, events ...event) string {
	var b strings.Builder
	for _, e := range events {
		j, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func out(test, text string) event { return event{Action: "output", Test: test, Output: text + "\n"} }

func TestSummaryNamesTheInnermostFailureAndItsMessage(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x_test.go"), []byte(fakeSource), 0o644)
	in := stream(t,
		out("TestX", "=== RUN   TestX"),
		out("TestX/ports", "=== RUN   TestX/ports"),
		out("TestX/ports", "    x_test.go:3: MEASURE 1s"),
		out("TestX/ports", "    x_test.go:5: took 4.1s to appear"),
		out("TestOther", "    x_test.go:5: a parallel test's line"),
		out("TestX/ports", "    x_test.go:4: $ fvm exec vm → 0"),
		out("TestX/ports", "        output of the command"),
		out("TestX/ports", "    x_test.go:4: fvm [exec vm] failed (1): no such vm"),
		out("TestX/ports", "        second line of the failure"),
		out("TestX/ports", "    x_test.go:3: MEASURE after"),
		out("TestOther", "    x_test.go:3: CRASH in vm a: [ 2.7] Oops: int3"),
		out("TestX/ports", "--- FAIL: TestX/ports (5.00s)"),
		event{Action: "fail", Test: "TestX/ports"},
		out("TestX", "--- FAIL: TestX (5.00s)"),
		event{Action: "fail", Test: "TestX"},
		out("", "FAIL"),
		event{Action: "fail"},
	)
	var o bytes.Buffer
	d := newDigest(&o, dir, "CRASH")
	if err := d.feed(strings.NewReader("not json: passed through\n" + in)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(o.String(), "not json: passed through\n=== RUN   TestX\n") || !strings.Contains(o.String(), "--- FAIL: TestX (5.00s)\nFAIL\n") {
		t.Errorf("the stream is not passed through as text:\n%s", o.String())
	}
	want := `=== what failed (the whole output is above)
FAILED TestX/ports
    x_test.go:5: took 4.1s to appear
    x_test.go:4: fvm [exec vm] failed (1): no such vm
    second line of the failure
x_test.go:3: CRASH in vm a: [ 2.7] Oops: int3
`
	if got := d.summary(); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

func TestSummaryFallsBackToTheLastLogLineAndTimeouts(t *testing.T) {
	in := stream(t,
		out("TestY", "=== RUN   TestY"),
		out("TestY", "    helper.go:9: one"),
		out("TestY", "    helper.go:9: two"),
		out("TestY", "    helper.go:9: three"),
		out("TestY", "    helper.go:9: four"),
		out("TestY", "        its continuation"),
		out("TestY", "--- FAIL: TestY (1.00s)"),
		event{Action: "fail", Test: "TestY"},
		out("", "panic: test timed out after 40m0s"),
		out("", "\trunning tests:"),
		out("", "\t\tTestZ (39m59s)"),
	)
	d := newDigest(&bytes.Buffer{}, t.TempDir(), "")
	d.feed(strings.NewReader(in))
	want := "=== what failed (the whole output is above)\nFAILED TestY\n    helper.go:9: four\n    its continuation\n" +
		"panic: test timed out after 40m0s\n    running tests:\n    TestZ (39m59s)\n"
	if got := d.summary(); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	if s := newDigest(&bytes.Buffer{}, ".", "").summary(); s != "" {
		t.Errorf("nothing failed, yet: %q", s)
	}
}
