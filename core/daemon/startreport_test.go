package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/warm"
)

// A clone's start: restore, its re-identification's phases, first SSH; saved
// once complete, read back for inspect; a cold boot after a failed clone says why.
func TestStartReport(t *testing.T) {
	inst := &store.Instance{Dir: t.TempDir()}
	t0 := time.Now().Add(-2 * time.Second)
	rep := newStartReport(inst, t0)
	rep.r.Boot = driver.BootClone
	rep.mark(api.PhaseRestore)
	rep.reidentified(warm.Reidentified{Via: warm.ViaAgent, Phases: []api.StartPhase{{Name: api.PhaseAgent, Seconds: 0.01}, {Name: api.PhaseReidentify, Seconds: 0.3}, {Name: api.PhaseKeyLive, Seconds: 0.2}}})
	rep.saveNow()
	if r := loadStartReport(inst); r == nil || len(r.Phases) != 4 {
		t.Fatalf("saved before SSH: %+v", r)
	}
	r, ok := rep.ready()
	if !ok || len(r.Phases) != 5 || r.Phases[4].Name != api.PhaseSSH || r.Via != "agent" {
		t.Fatalf("ready: %+v", r)
	}
	if r.Total() < 2 || r.Phases[0].Seconds < 1.9 {
		t.Errorf("phases from the start: %+v", r)
	}
	if _, again := rep.ready(); again {
		t.Error("a reconnection ended the start again")
	}
	got := loadStartReport(inst)
	if got == nil || got.Boot != "clone" || len(got.Phases) != 5 {
		t.Fatalf("loaded %+v", got)
	}
	if s := phasesText(*got); !strings.HasPrefix(s, "restore=") || !strings.Contains(s, "agent-ready=10ms") {
		t.Errorf("log line %q", s)
	}
	rep2 := newStartReport(inst, time.Now())
	rep2.r.Boot = driver.BootClone
	rep2.mark(api.PhaseRestore)
	rep2.fellBack("the warm clone could not be re-identified (x): booted cold")
	rep2.mark(api.PhaseBoot)
	if r, _ := rep2.ready(); r.Boot != "cold" || r.Note == "" || r.Phases[1].Name != "clone-failed" {
		t.Fatalf("fell back: %+v", r)
	}
}
