package daemon

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
)

// agentMachine is a fake machine whose guest agent answers from answerAt on.
type agentMachine struct {
	fakeMachine
	info     driver.MachineInfo
	answerAt time.Time
	pings    atomic.Int32
}

func (m *agentMachine) Info() driver.MachineInfo { return m.info }

func (m *agentMachine) GuestPing(ctx context.Context) error {
	m.pings.Add(1)
	if time.Now().After(m.answerAt) {
		return nil
	}
	<-ctx.Done() // as QEMU's agent channel: nobody answers the sync
	return fmt.Errorf("%w: %w", driver.ErrNoAgent, ctx.Err())
}

func (m *agentMachine) GuestSetTime(context.Context, time.Time) error { return nil }

func (m *agentMachine) GuestExec(context.Context, []string, []byte) (driver.GuestExit, error) {
	return driver.GuestExit{}, nil
}

// TestAgentGate: a cold boot of an image that runs the agent from its boot
// tries SSH once the agent answers; any other start, or a machine without
// the agent's channel, has no gate; an agent that never answers is given up
// on after driver.BootAgentWait.
func TestAgentGate(t *testing.T) {
	d := newTestDaemon(t, &fakeDriver{running: map[string]*fakeMachine{}})
	cold := driver.MachineInfo{Boot: driver.BootCold, AgentAtBoot: true, Accel: "tcg"}
	run := func(m *agentMachine) *driver.Run { return &driver.Run{Machine: m, Agent: m} }
	for _, info := range []driver.MachineInfo{
		{Boot: driver.BootClone, AgentAtBoot: true, Accel: "tcg"},
		{Boot: driver.BootCold, Accel: "tcg"}, // an image not known to run the agent
	} {
		if d.agentGate("v", run(&agentMachine{info: info})) != nil {
			t.Errorf("a gate for %+v", info)
		}
	}
	if d.agentGate("v", &driver.Run{Machine: &agentMachine{info: cold}}) != nil {
		t.Error("a gate for a machine without the agent's channel")
	}

	m := &agentMachine{info: cold, answerAt: time.Now().Add(300 * time.Millisecond)}
	gate := d.agentGate("v", run(m))
	start := time.Now()
	if !gate(context.Background()) {
		t.Error("the gate opened on an answering agent but says the guest is not up")
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 5*time.Second {
		t.Errorf("the gate opened after %v, want once the agent answers (0.3–2.3 s)", el)
	}

	defer func(w time.Duration) { driver.BootAgentWait = w }(driver.BootAgentWait)
	driver.BootAgentWait = 500 * time.Millisecond
	never := &agentMachine{info: cold, answerAt: time.Now().Add(time.Hour)}
	start = time.Now()
	if d.agentGate("v", run(never))(context.Background()) {
		t.Error("the gate says a guest whose agent never answered is up")
	}
	if el := time.Since(start); el < 500*time.Millisecond || el > 3*time.Second {
		t.Errorf("an agent that never answers held SSH back for %v, want driver.BootAgentWait (0.5 s)", el)
	}
}
