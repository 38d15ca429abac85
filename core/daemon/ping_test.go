package daemon

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
)

// stuckChecks is a backend whose checks do not answer (a libvirtd probing
// QEMU on its first start answers nothing for minutes).
type stuckChecks struct{ *fakeDriver }

func (stuckChecks) Checks(ctx context.Context) []driver.Check {
	<-ctx.Done()
	return nil
}

// TestPingWithAStuckBackend: a client's liveness check answers at once while
// a backend's checks hang; the full host info does wait for them. Before,
// such a host looked dead to the CLI, which then started another host that
// the first one's lock refused.
func TestPingWithAStuckBackend(t *testing.T) {
	drv := &fakeDriver{running: map[string]*fakeMachine{}}
	h := startHostWith(t, Options{Drivers: []driver.Driver{stuckChecks{drv}}}, drv)
	start := time.Now()
	info, err := h.c.Ping(context.Background(), 2*time.Second)
	if err != nil || info.PID != os.Getpid() || info.Version != "test" {
		t.Fatalf("ping: %+v %v", info, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("ping took %v", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := h.c.Host(ctx); err == nil {
		t.Error("the full host info answered without its stuck backend's checks: the test proves nothing")
	}
}
