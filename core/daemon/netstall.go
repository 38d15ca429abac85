package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
)

// netStallAfter is how long SSH may stay silent after a cold boot's guest
// agent answered before fvm asks the agent whether the guest has a network.
// fvm's images start the agent after their network stage, so by then the
// guest's address is there or will not come. A var: tests shorten it.
var netStallAfter = 30 * time.Second

// netWatch names a cold boot whose network did not come up, so that those
// waiting for its SSH (run -d, fvm wait, exec) hear why at once instead of
// after their 10-minute bound. Under TCG cloud-init once named the NIC
// before udev had renamed it, ifupdown failed on the old name, and the VM
// had no address: SSH reached QEMU's port forward and never got a word.
type netWatch struct {
	up    chan struct{} // closed by the cold-boot gate once the agent answered
	upped sync.Once
	stall chan struct{} // closed when the diagnosis is made
	once  sync.Once
	why   error
}

func newNetWatch() *netWatch {
	return &netWatch{up: make(chan struct{}), stall: make(chan struct{})}
}

// agentUp says the guest's agent answered: the watch's clock starts.
func (w *netWatch) agentUp() { w.upped.Do(func() { close(w.up) }) }

func (w *netWatch) fire(why error) {
	w.once.Do(func() {
		w.why = why
		close(w.stall)
	})
}

// stalled returns the diagnosis once made, else nil.
func (w *netWatch) stalled() error {
	if w == nil {
		return nil
	}
	select {
	case <-w.stall:
		return w.why
	default:
		return nil
	}
}

// watchNetwork waits for w's agent, then netStallAfter: if h has not
// connected by then and the VM's NIC has no IPv4 address by its agent's
// account, the diagnosis is made. An agent that cannot say, an address that
// is there (SSH is only slow), or a VM that ended make none.
func (d *Daemon) watchNetwork(name string, nics driver.NICReporter, h *sshx.Holder, w *netWatch) {
	select {
	case <-w.up:
	case <-h.Done():
		return
	}
	t := time.NewTimer(netStallAfter)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.Done():
		return
	}
	if h.Connects() > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(d.bg, 10*time.Second)
	n, err := nics.NIC(ctx)
	cancel()
	if err != nil || n.Error != "" || n.HasIPv4() || h.Connects() > 0 {
		return
	}
	have := "no IPv4 address"
	if len(n.IPs) > 0 {
		have = "no IPv4 address (only " + strings.Join(n.IPs, ", ") + ")"
	}
	why := fmt.Errorf("vm %q: the guest's network is down: %s after its agent answered, its NIC %s has %s, so SSH cannot answer; the guest's boot log says why (`fvm logs %s`), `fvm restart %s` boots it again", name, netStallAfter, n.MAC, have, name, name)
	d.log.Warn("the guest's network is down: SSH cannot answer", "vm", name, "nic", n.MAC, "ips", n.IPs)
	w.fire(why)
}

// awaitReady waits until h is connected, ctx ends, or w's diagnosis is made
// (then it is the error).
func awaitReady(ctx context.Context, h *sshx.Holder, w *netWatch) error {
	if w == nil {
		return h.Ready(ctx)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-w.stall:
			cancel(errNetStall)
		case <-rctx.Done():
		}
	}()
	err := h.Ready(rctx)
	if err != nil && errors.Is(context.Cause(rctx), errNetStall) {
		return w.why
	}
	return err
}

var errNetStall = errors.New("the guest's network is down")
