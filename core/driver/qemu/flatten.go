package qemu

// Flattening: a running VM whose disk reads more than the limit of its own
// frozen layers has them streamed into its top in QEMU's background. Once
// the stream ends, the layers it copied may be read by nothing (no snapshot,
// no clone): the host is told (driver.LayerWatcher) and prunes them. The job
// runs on in QEMU when the host goes; the next host's Attach finds it and
// watches it in turn.

import (
	"context"
	"fmt"
	"time"

	"github.com/fvmhq/fvm/core/driver"
)

var _ driver.LayerWatcher = (*Driver)(nil)

// flattenPoll is how often a flattening's end is looked for: each look is a
// short QMP connection, which QEMU serves one at a time.
const flattenPoll = 250 * time.Millisecond

// WatchLayers has freed called once a flattening ended (driver.LayerWatcher).
func (d *Driver) WatchLayers(freed func()) { d.freed.Store(&freed) }

// layersFreed tells the host that layers may have fallen out of use.
func (d *Driver) layersFreed() {
	if f := d.freed.Load(); f != nil {
		(*f)()
	}
}

// flattenIfDeep starts streaming the VM's own layers into its top, in QEMU's
// background, when there are more than the limit of them, and watches it.
func (m *Machine) flattenIfDeep(ctx context.Context) {
	if m.d == nil {
		return
	}
	ch, err := chain(m.topPath())
	if err != nil {
		return
	}
	base, deep := flattenBase(m.d.layersDir(m.p.dir), ch, m.d.maxLayers())
	if !deep {
		return
	}
	err = qmpDo(ctx, m.p.qmp, func(q *QMP) error { return startStream(ctx, q, base) })
	if err != nil {
		fmt.Fprintf(m.d.opts.Log, "vm %q: flatten its disk's %d layers: %v\n", m.name, len(ch), err)
		return
	}
	fmt.Fprintf(m.d.opts.Log, "vm %q: flattening its disk's layers into its top in the background\n", m.name)
	go m.awaitFlatten()
}

// watchFlattening watches a flattening an earlier host started, if one runs
// (Attach).
func (m *Machine) watchFlattening(ctx context.Context) {
	if running, err := m.flattening(ctx); err == nil && running {
		go m.awaitFlatten()
	}
}

// awaitFlatten waits until the VM's flattening is over (done, cancelled by a
// snapshot, or the VM gone) and tells the host.
func (m *Machine) awaitFlatten() {
	defer m.d.layersFreed()
	t := time.NewTicker(flattenPoll)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-m.end.Done:
			return
		case <-t.C:
		}
		running, err := m.flattening(context.Background())
		switch {
		case err != nil && m.exited():
			return
		case err != nil:
			if fails++; fails >= 20 { // 5 s of a monitor that does not answer: the host's next prune will do
				fmt.Fprintf(m.d.opts.Log, "vm %q: watching its disk's flattening: %v\n", m.name, err)
				return
			}
		case !running:
			return
		default:
			fails = 0
		}
	}
}

// flattening says whether the VM's disk has a flattening in progress.
func (m *Machine) flattening(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var jobs []struct {
		ID string `json:"id"`
	}
	if err := qmpDo(ctx, m.p.qmp, func(q *QMP) error { return q.Execute(ctx, "query-block-jobs", nil, &jobs) }); err != nil {
		return false, err
	}
	for _, j := range jobs {
		if j.ID == streamJob {
			return true, nil
		}
	}
	return false, nil
}
