package daemon

// Where the time of a start goes: each start of a VM records its phases
// (api.StartReport) until its first SSH session ran, saves them in the VM's
// directory for `fvm inspect` and logs them in one line.

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/warm"
)

// startReport is the report of the start in progress (or last made) of a VM.
type startReport struct {
	mu   sync.Mutex
	inst *store.Instance
	r    api.StartReport
	last time.Time // end of the last phase
	done bool      // the first SSH session ran: the report is complete
}

func newStartReport(inst *store.Instance, t0 time.Time) *startReport {
	return &startReport{inst: inst, r: api.StartReport{StartedAt: t0.UTC()}, last: t0}
}

// mark ends the current phase under name.
func (s *startReport) mark(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.r.Phases = append(s.r.Phases, api.StartPhase{Name: name, Seconds: now.Sub(s.last).Seconds()})
	s.last = now
}

// started records how the machine began: its first phase ends now.
func (s *startReport) started(m driver.Machine) {
	boot := m.Info().Boot
	s.mu.Lock()
	s.r.Boot = boot
	s.mu.Unlock()
	if boot == driver.BootCold || boot == "" {
		s.mark(api.PhaseBoot)
	} else {
		s.mark(api.PhaseRestore)
	}
}

// reidentified adds a clone's re-identification phases.
func (s *startReport) reidentified(re warm.Reidentified) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r.Via, s.r.Note = re.Via, driver.JoinNotices(s.r.Note, re.Note) // after a crash's note
	for _, ph := range re.Phases {
		s.r.Phases = append(s.r.Phases, ph)
		s.last = s.last.Add(time.Duration(ph.Seconds * float64(time.Second)))
	}
}

// fellBack records that the clone was given up for a cold boot, and why:
// what it took so far is one phase.
func (s *startReport) fellBack(why string) {
	s.mark("clone-failed")
	s.coldNote(why)
}

// crashed records that the restored clone's guest kernel crashed (the
// serial line that says so) and that it is restored again: what it took so
// far is one phase, and the note says why the start took longer.
func (s *startReport) crashed(line string) {
	s.mark("clone-crashed")
	s.mu.Lock()
	s.r.Note = "the clone's guest kernel crashed after its restore (" + line + "): restored again"
	s.mu.Unlock()
}

// coldNote records why a clone's start ended in a cold boot the driver made
// by itself (its restore failed).
func (s *startReport) coldNote(why string) {
	s.mu.Lock()
	s.r.Boot, s.r.Via, s.r.Note = driver.BootCold, "", why
	s.mu.Unlock()
}

// ready ends the start: the first SSH session ran. It saves the report and
// returns it, once; later calls (reconnections) return false.
func (s *startReport) ready() (api.StartReport, bool) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return api.StartReport{}, false
	}
	s.mu.Unlock()
	s.mark(api.PhaseSSH)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.save()
	return s.r, true
}

// save writes the report (s.mu held); a start that never reaches SSH keeps
// the phases it had.
func (s *startReport) save() {
	store.WriteJSON(s.inst.Path(store.StartFile), s.r)
}

// saveNow saves the report as it is (the start returned; SSH is to come).
func (s *startReport) saveNow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.save()
}

// loadStartReport reads a VM's last start report; nil when it has none.
func loadStartReport(inst *store.Instance) *api.StartReport {
	var r api.StartReport
	if store.ReadJSON(inst.Path(store.StartFile), &r) != nil {
		return nil
	}
	return &r
}

// phasesText is a report's phases for a log line: "restore=1.2s agent-ready=3ms ...".
func phasesText(r api.StartReport) string {
	var b strings.Builder
	for i, ph := range r.Phases {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", ph.Name, time.Duration(ph.Seconds*float64(time.Second)).Round(time.Millisecond))
	}
	return b.String()
}

// setStartReport makes rep the report of name's run r (the holder completes it).
func (d *Daemon) setStartReport(name string, r *driver.Run, rep *startReport) {
	rep.saveNow()
	d.mu.Lock()
	if e := d.entry(name); e.run == r {
		e.start = rep
	}
	d.mu.Unlock()
}

// startPhase ends a phase of the start in progress of a VM run by r.
func (d *Daemon) startPhase(name string, r *driver.Run, phase string) {
	d.mu.Lock()
	var rep *startReport
	if e := d.vms[name]; e != nil && e.run == r {
		rep = e.start
	}
	d.mu.Unlock()
	if rep != nil {
		rep.mark(phase)
	}
}

// startReady completes the report of name's run r at its first SSH session.
func (d *Daemon) startReady(name string, r *driver.Run) {
	d.mu.Lock()
	var rep *startReport
	if e := d.vms[name]; e != nil && e.run == r {
		rep = e.start
	}
	d.mu.Unlock()
	if rep == nil { // re-adopted: its start was another host's
		return
	}
	if rr, ok := rep.ready(); ok {
		d.log.Info("vm ready", "vm", name, "boot", rr.Boot, "via", rr.Via, "total", time.Duration(rr.Total()*float64(time.Second)).Round(time.Millisecond), "phases", phasesText(rr))
	}
}
