package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// Without a terminal, progress is plain lines: phases, then bytes with rate
// and ETA every few seconds, and always the last one.
func TestPlainProgress(t *testing.T) {
	var buf bytes.Buffer
	a := &app{errOut: &buf}
	p := a.newProgress("debian")
	ev := api.Event{Image: "debian:12", Arch: "amd64"}
	send := func(phase string, done, total int64) {
		e := ev
		e.Phase, e.Done, e.Total = phase, done, total
		p.event(e)
	}
	send(api.PhaseResolving, 0, 0)
	send(api.PhaseDownloading, 0, 4<<20)
	p.start = time.Now().Add(-2 * time.Second) // pretend two seconds went by
	send(api.PhaseDownloading, 1<<20, 4<<20)   // within plainEvery: not printed
	send(api.PhaseDownloading, 4<<20, 4<<20)
	send(api.PhaseVerified, 0, 0)
	p.finish()
	out := buf.String()
	for _, want := range []string{
		"==> Asking upstream for the current build of debian:12 (amd64)\n",
		"==> debian:12 (amd64): 0 of 4M (0%)\n",
		"==> debian:12 (amd64): 4M of 4M (100%), 2M/s\n",
		"==> Verified debian:12 (amd64) against upstream's checksum\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 4 {
		t.Errorf("%d lines, want 4:\n%s", n, out)
	}
}

func TestProgressLineETA(t *testing.T) {
	p := &pullProgress{label: "x", start: time.Now().Add(-10 * time.Second), done: 100 << 20, total: 300 << 20}
	if got := p.line(p.start.Add(10 * time.Second)); got != "x: 100M of 300M (33%), 10M/s, ETA 20s" {
		t.Errorf("line %q", got)
	}
}

func TestUpdateTable(t *testing.T) {
	var out, errOut bytes.Buffer
	a := &app{out: &out, errOut: &errOut}
	printUpdates(a, []api.ImageUpdate{
		{Ref: "debian:12", Arch: "amd64", CachedBuild: "20250101-1000", AvailableBuild: "20250210-2019", Newer: true},
		{Ref: "alpine:3.22", Arch: "amd64", CachedDigest: "sha512:0123456789abcdef0123", AvailableDigest: "sha512:0123456789abcdef0123"},
		{Ref: "ubuntu:24.04", Arch: "arm64", CachedBuild: "20250430", Error: "GET x: connection refused"},
	})
	for _, want := range []string{
		"IMAGE", "CACHED BUILD", "AVAILABLE BUILD",
		"latest (sha512:0123456789ab)",
		"error: GET x: connection refused",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if !regexp.MustCompile(`debian:12\s+amd64\s+20250101-1000\s+20250210-2019\s+newer available`).MatchString(out.String()) {
		t.Errorf("debian row:\n%s", out.String())
	}
}
