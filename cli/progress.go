package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// plainEvery is how often a download's progress is printed when stderr is not a terminal.
const plainEvery = 5 * time.Second

// pullProgress shows a pull's progress events on stderr: a bar with bytes,
// rate and ETA on a terminal, a plain line every few seconds otherwise (logs,
// CI), so stdout stays the command's own output.
type pullProgress struct {
	w     io.Writer
	tty   bool
	label string
	phase string
	bar   *progressbar.ProgressBar
	// plain mode: when the download started, from which byte, last line printed
	start     time.Time
	startDone int64
	lastLine  time.Time
	done      int64
	total     int64
}

func (a *app) newProgress(label string) *pullProgress {
	tty := false
	if f, ok := a.errOut.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &pullProgress{w: a.errOut, tty: tty, label: label}
}

// event handles one progress event; it is the callback of a pull or import.
func (p *pullProgress) event(ev api.Event) {
	if ev.Image != "" {
		p.label = ev.Image
		if ev.Arch != "" {
			p.label += " (" + string(ev.Arch) + ")"
		}
	}
	if ev.Phase != p.phase && p.phase == api.PhaseDownloading {
		p.endDownload()
	}
	prev := p.phase
	p.phase = ev.Phase
	switch ev.Phase {
	case api.PhaseResolving:
		fmt.Fprintf(p.w, "==> Asking upstream for the current build of %s\n", p.label)
	case api.PhaseWaiting:
		fmt.Fprintf(p.w, "==> Another pull is downloading %s: waiting for it\n", p.label)
	case api.PhaseUpToDate:
		fmt.Fprintf(p.w, "==> %s is up to date\n", p.label)
	case api.PhaseVerified:
		fmt.Fprintf(p.w, "==> Verified %s against upstream's checksum\n", p.label)
	case api.PhaseDownloading:
		if prev != api.PhaseDownloading {
			p.startDownload(ev)
		}
		p.download(ev)
	}
}

func (p *pullProgress) startDownload(ev api.Event) {
	p.start, p.startDone, p.lastLine, p.total = time.Now(), ev.Done, time.Time{}, ev.Total
	if ev.Done > 0 {
		fmt.Fprintf(p.w, "==> Resuming the download of %s at %s\n", p.label, vm.FormatSize(ev.Done))
	}
	if !p.tty {
		return
	}
	max := ev.Total
	if max <= 0 {
		max = -1 // unknown length: a spinner with bytes and rate
	}
	p.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetDescription(p.label),
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
	)
	if ev.Done > 0 {
		p.bar.Set64(ev.Done)
	}
}

func (p *pullProgress) download(ev api.Event) {
	p.done = ev.Done
	if ev.Total > 0 {
		p.total = ev.Total
	}
	if p.bar != nil {
		p.bar.Set64(ev.Done)
		return
	}
	now := time.Now()
	if p.total > 0 && ev.Done >= p.total || p.lastLine.IsZero() || now.Sub(p.lastLine) >= plainEvery {
		p.lastLine = now
		fmt.Fprintf(p.w, "==> %s\n", p.line(now))
	}
}

// line is a plain progress line: "debian:12 (amd64): 412M of 1.1G (37%), 85M/s, ETA 8s".
func (p *pullProgress) line(now time.Time) string {
	s := fmt.Sprintf("%s: %s", p.label, vm.FormatSize(p.done))
	if p.total > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", vm.FormatSize(p.total), p.done*100/p.total)
	}
	el := now.Sub(p.start).Seconds()
	if got := p.done - p.startDone; el > 0.2 && got > 0 {
		rate := float64(got) / el
		s += fmt.Sprintf(", %s/s", vm.FormatSize(int64(rate)))
		if p.total > p.done {
			eta := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
			s += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
		}
	}
	return s
}

func (p *pullProgress) endDownload() {
	if p.bar != nil {
		if !p.bar.IsFinished() {
			p.bar.Finish()
		}
		p.bar = nil
	}
}

// finish closes a bar left open (a failed or interrupted download).
func (p *pullProgress) finish() {
	if p.bar != nil {
		p.bar.Exit()
		fmt.Fprintln(p.w)
		p.bar = nil
	}
}
