// Package warm is the host's warm snapshots and clones, as one unit with
// explicit dependencies (Options).
//
// After a VM of an image boots cold, the host makes that image's warm
// snapshot for the VM's shape in the background (build.go): a template VM
// booted under a generic identity (hostname fvm-warm, fvm's key only) until
// cloud-init finished, then suspended and frozen by its driver
// (driver.Warmer). A later VM of the same image and shape is created as a
// clone (its disk an overlay on the snapshot's) and its first start restores
// the snapshot's memory: Decide (decide.go) is the one place that says
// whether a snapshot serves a VM, at create and at that first start, and the
// driver trusts it. Before a clone counts as started, the host re-identifies
// it (reidentify.go). Snapshots go with their image or when they no longer
// fit (prune.go). Anything that does not fit boots cold, with a notice.
package warm

import (
	"context"
	"log/slog"
	"sync"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Options are what the unit needs of the host.
type Options struct {
	Layout store.Layout
	Log    *slog.Logger
	// Bind resolves the driver of a spec's backend for that spec (an error
	// when the host has no such backend).
	Bind func(ctx context.Context, spec *vm.Spec) (*driver.VM, error)
	// Provision writes a new instance's identity (host keys, instance id)
	// and returns its cloud-init seed, as for any VM.
	Provision func(inst *store.Instance, v *driver.VM) ([]byte, error)
	// InUse lists the files some VM's disk reads (bases and snapshot disks):
	// a snapshot one of them reads is never removed.
	InUse func() (map[string]bool, error)
	// Enabled says whether the host makes snapshots by itself after cold
	// boots (images.warm); snapshots that exist serve new VMs either way.
	Enabled func() bool
	// Made is told of every snapshot made (an event for subscribers).
	Made func(image string, arch vm.Arch)
	// Target is how the host reaches a running VM's SSH with a pinned host
	// key ("" for the VM's own).
	Target func(inst *store.Instance, m driver.Machine, hostKey string) sshx.Target
}

// Pool is the host's warm snapshots. Background builds run under ctx (the
// host's): they end when it does, and Wait waits for them to clean up.
type Pool struct {
	opts Options
	ctx  context.Context
	wg   sync.WaitGroup

	mu    sync.Mutex
	keys  map[string]chan struct{} // snapshots being made: closed when that build ended
	slots chan struct{}            // one build at a time: each is a whole VM boot
}

// New returns the pool; builds end with ctx.
func New(ctx context.Context, o Options) *Pool {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Pool{opts: o, ctx: ctx, keys: map[string]chan struct{}{}, slots: make(chan struct{}, 1)}
}

// Wait waits for background builds, which end with the pool's context.
func (p *Pool) Wait() { p.wg.Wait() }
