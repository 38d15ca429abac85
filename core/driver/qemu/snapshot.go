package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Named snapshots (driver.Snapshotter, driver.LiveSnapshotter). A snapshot
// directory holds what a warm snapshot's does, so that clones and restores
// take the warm path as it is: DiskFile (here a symbolic link to the frozen
// layer, which outlives the VM), the firmware variables and, with memory,
// StateFile and StateMetaFile as Suspend writes them.
//
// A running VM with memory: the migration of its memory starts while the
// guest runs (QEMU copies its RAM, then again what the guest dirtied); QEMU
// stops the guest for the last pass and, with pause-before-switchover, waits
// before saving the devices: the disk switches to a new top there (the old
// one freezes with exactly the disk of the saved memory), the variables are
// copied, the migration completes and the guest goes on (cont, which also
// takes the disks back from the finished migration). The pause is that last
// pass, measured from the last moment the guest was seen running.

// snapshotTimeout bounds a snapshot of a running VM (its memory's copy).
const snapshotTimeout = 10 * time.Minute

// Snapshot freezes a stopped (or suspended) VM's disk into dir
// (driver.Snapshotter); a suspended VM's saved state goes with it.
func (d *Driver) Snapshot(ctx context.Context, inst *store.Instance, dir string) (driver.SnapshotResult, error) {
	fail := func(err error) (driver.SnapshotResult, error) {
		return driver.SnapshotResult{}, fmt.Errorf("vm %q: snapshot: %w", inst.Spec.Name, err)
	}
	p := pathsOf(inst)
	layerMu.Lock()
	defer layerMu.Unlock()
	f, _ := loadFacts(inst)
	if pid := proc.ReadPIDFile(p.pid); isOurQEMU(pid, f.QEMU, p.launchedAs(f).pidArg) {
		return fail(errors.New("it is running: its machine takes the snapshot"))
	}
	if err := settle(inst, ""); err != nil {
		return fail(err)
	}
	f, _ = loadFacts(inst)
	n, err := d.beginSwitch(ctx, inst, f)
	if err != nil {
		return fail(err)
	}
	f.Next = &n
	var res driver.SnapshotResult
	err = copyFile(p.vars, filepath.Join(dir, store.EFIVarsFile))
	if meta, ok := loadState(p); ok && err == nil { // suspended: its memory fits the frozen disk
		sp := pathsOf(&store.Instance{Dir: dir})
		err = errors.Join(os.Link(p.state, sp.state), os.Link(p.stateMeta, sp.stateMeta))
		res.Memory, res.Fingerprint = true, meta.Fingerprint.Key()
	}
	if err != nil {
		return fail(errors.Join(err, undoSwitch(inst, f)))
	}
	if err := commitSwitch(inst, f); err != nil {
		return fail(err)
	}
	if err := os.Symlink(n.Layer, filepath.Join(dir, DiskFile)); err != nil {
		return fail(err)
	}
	if res.Memory { // a suspended VM's: the kernel its memory runs
		linkKernelFiles(inst.Dir, dir)
	}
	if flat, err := d.flattenStopped(ctx, inst.Path(n.Top)); err != nil {
		res.Notice = fmt.Sprintf("its disk's layers could not be flattened (%v): the next start tries again", err)
	} else if flat {
		res.Notice = "its disk's layers were flattened into its top"
	}
	return res, nil
}

// Revert gives a VM that does not run the snapshot's disk again: a new top
// on the snapshot's frozen layer, its firmware variables; the old top and a
// saved state of its own are discarded (driver.Snapshotter).
func (d *Driver) Revert(ctx context.Context, inst *store.Instance, dir string) error {
	fail := func(err error) error { return fmt.Errorf("vm %q: restore: %w", inst.Spec.Name, err) }
	p := pathsOf(inst)
	layerMu.Lock()
	defer layerMu.Unlock()
	f, _ := loadFacts(inst)
	if pid := proc.ReadPIDFile(p.pid); isOurQEMU(pid, f.QEMU, p.launchedAs(f).pidArg) {
		return fail(errors.New("it is running: stop it first"))
	}
	if err := settle(inst, ""); err != nil {
		return fail(err)
	}
	layer, err := frozenDisk(dir)
	if err != nil {
		return fail(err)
	}
	info, err := image.Inspect(layer)
	if err != nil {
		return fail(err)
	}
	if err := removeState(p); err != nil {
		return fail(err)
	}
	if err := copyFile(filepath.Join(dir, store.EFIVarsFile), p.vars); err != nil {
		return fail(err)
	}
	f, _ = loadFacts(inst)
	n := topSwitch{Top: newTopName(), Layer: layer, Old: f.topName()}
	f.Next = &n
	if err := saveFacts(inst, f); err != nil {
		return fail(err)
	}
	if err := d.newTop(ctx, inst.Path(n.Top), layer, info.VirtualSize); err != nil {
		return fail(errors.Join(err, undoSwitch(inst, f)))
	}
	return commitSwitch(inst, f)
}

// Snapshot freezes the running VM's disk into dir and, with memory, saves
// its memory and devices there, pausing the guest as briefly as QEMU can;
// without memory the guest's filesystems are frozen (guest agent) around the
// switch (driver.LiveSnapshotter). The VM runs on; on failure as before.
func (m *Machine) Snapshot(ctx context.Context, dir string, memory bool) (driver.SnapshotResult, error) {
	fail := func(err error) (driver.SnapshotResult, error) {
		return driver.SnapshotResult{}, fmt.Errorf("vm %q: snapshot: %w", m.name, err)
	}
	if m.exited() {
		return fail(errors.New("it is not running"))
	}
	if memory && m.fp == (Fingerprint{}) {
		return fail(fmt.Errorf("its QEMU was started by an fvm that could not save state: restart it once (`fvm restart %s`), then snapshot it", m.name))
	}
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	layerMu.Lock()
	defer layerMu.Unlock()
	if err := m.settleLocked(ctx); err != nil {
		return fail(err)
	}
	inst := m.inst()
	if err := qmpDo(ctx, m.p.qmp, func(q *QMP) error { return cancelJobs(ctx, q) }); err != nil {
		return fail(err)
	}
	f, _ := loadFacts(inst)
	n, err := m.d.beginSwitch(ctx, inst, f)
	if err != nil {
		return fail(err)
	}
	f.Next = &n
	top := inst.Path(n.Top)
	node := nodeName(n.Top)
	vars := filepath.Join(dir, store.EFIVarsFile)
	var res driver.SnapshotResult
	if memory {
		res, err = m.saveLive(ctx, dir, top, node, vars)
	} else {
		res, err = m.snapshotDisk(ctx, top, node, vars)
	}
	if err != nil {
		// Whatever happened, the facts must say which top QEMU writes now.
		qctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
		defer cancel()
		serr := qmpDo(qctx, m.p.qmp, func(q *QMP) error {
			cur, err := queryTop(qctx, q)
			if err == nil {
				err = settle(inst, cur)
			}
			return err
		})
		return fail(errors.Join(err, serr))
	}
	if err := commitSwitch(inst, f); err != nil {
		return fail(err)
	}
	m.setTop(top)
	if err := os.Symlink(n.Layer, filepath.Join(dir, DiskFile)); err != nil {
		return fail(err)
	}
	if res.Memory {
		linkKernelFiles(m.p.dir, dir)
	}
	m.flattenIfDeep(ctx)
	return res, nil
}

// linkKernelFiles gives a snapshot the kernel and initrd of the VM's direct
// kernel boot (hard links: a later cold boot replaces the VM's own by
// rename). A clone restoring the snapshot's memory starts QEMU with the
// kernel that memory runs, without reading it out of the disk first
// (kernelFiles); without them it does that. A VM booted by its firmware has none.
func linkKernelFiles(vmDir, dir string) {
	k, i := kernelBootFiles(vmDir)
	sk, si := kernelBootFiles(dir)
	if isFile(k) && isFile(i) && os.Link(k, sk) == nil && os.Link(i, si) != nil {
		os.Remove(sk) // both or neither
	}
}

// nodeName is the QEMU node name of a top file (its name without .qcow2).
func nodeName(top string) string { return top[:len(top)-len(filepath.Ext(top))] }

func (m *Machine) inst() *store.Instance {
	return &store.Instance{Dir: m.p.dir, Spec: vm.Spec{Name: m.name}}
}

// saveLive is the memory snapshot: a live migration into dir's state file
// that pauses before switching over; the disk switches to top there.
func (m *Machine) saveLive(ctx context.Context, dir, top, node, vars string) (driver.SnapshotResult, error) {
	sp := pathsOf(&store.Instance{Dir: dir})
	part := sp.state + partSuffix
	sf, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return driver.SnapshotResult{}, err
	}
	defer func() { sf.Close(); os.Remove(part) }()
	t0 := time.Now()
	var running, paused, resumed time.Time
	var downtime int64
	err = qmpDo(ctx, m.p.qmp, func(q *QMP) error {
		// A snapshot carries its memory, wherever the VM's memory is (memfile.go).
		if err := q.Execute(ctx, "migrate-set-capabilities", saveCaps(false, true), nil); err != nil {
			return err
		}
		defer q.Execute(context.Background(), "migrate-set-capabilities", map[string]any{"capabilities": []map[string]any{
			{"capability": "pause-before-switchover", "state": false}}}, nil)
		// A local file takes what the disk gives (QEMU caps migration at 128 MiB/s
		// by default); the last pass, with the guest stopped, aims at 50 ms.
		if err := q.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40, "downtime-limit": 50}, nil); err != nil {
			return err
		}
		if err := q.SendFD(ctx, "fvm-snapshot", sf); err != nil {
			return err
		}
		running = time.Now()
		if m.mappedMem { // memfile.go: copied with the guest paused
			if err := q.Execute(ctx, "stop", nil, nil); err != nil {
				return err
			}
		}
		if err := q.Execute(ctx, "migrate", map[string]any{"uri": "fd:fvm-snapshot"}, nil); err != nil {
			return abortMigration(q, err)
		}
		// A guest that dirties its memory faster than the file takes it would
		// never converge: the allowed last pass grows with the wait.
		relax := []struct {
			after time.Duration
			ms    int64
		}{{10 * time.Second, 1000}, {30 * time.Second, 10000}}
		for { // until QEMU stopped the guest for the last pass and waits
			if len(relax) > 0 && time.Since(t0) > relax[0].after {
				q.Execute(ctx, "migrate-set-parameters", map[string]any{"downtime-limit": relax[0].ms}, nil)
				relax = relax[1:]
			}
			st, err := q.QueryMigrate(ctx)
			if err != nil {
				return abortMigration(q, err)
			}
			if st.Status == "pre-switchover" {
				paused = time.Now()
				break
			}
			if st.Status == "failed" || st.Status == "cancelled" { // a guest fvm paused goes on
				return abortMigration(q, fmt.Errorf("migration %s: %s", st.Status, st.ErrorMsg))
			}
			if !m.mappedMem {
				running = time.Now() // still copying: the guest ran until at least now
			}
			select {
			case <-ctx.Done():
				return abortMigration(q, fmt.Errorf("the memory copy did not converge: %w", ctx.Err()))
			case <-time.After(5 * time.Millisecond):
			}
		}
		if err := snapshotTop(ctx, q, top, node); err != nil {
			return abortMigration(q, err)
		}
		// The disk switched: from here the migration runs to its end and the
		// guest goes on, even if the caller gave up (a ^C, the timeout).
		fin, cancel := context.WithTimeout(context.Background(), finishTimeout)
		defer cancel()
		if err := copyFile(m.p.vars, vars); err != nil {
			// Only the snapshot fails.
			q.Execute(fin, "migrate-continue", map[string]any{"state": "pre-switchover"}, nil)
			waitMigration(fin, q)
			resumeGuest(fin, q)
			return err
		}
		if err := q.Execute(fin, "migrate-continue", map[string]any{"state": "pre-switchover"}, nil); err != nil {
			return abortMigration(q, err)
		}
		werr := waitMigration(fin, q)
		// The guest goes on whatever the migration did (cont takes the disks back).
		if err := resumeGuest(fin, q); err != nil {
			return errors.Join(werr, err)
		}
		resumed = time.Now()
		if werr != nil {
			return werr
		}
		st, _ := q.QueryMigrate(fin)
		downtime = st.Downtime
		return nil
	})
	if err != nil {
		return driver.SnapshotResult{}, err
	}
	if err := errors.Join(sf.Sync(), sf.Close()); err != nil {
		return driver.SnapshotResult{}, err
	}
	st, err := os.Stat(part)
	if err != nil {
		return driver.SnapshotResult{}, err
	}
	if err := os.Rename(part, sp.state); err != nil {
		return driver.SnapshotResult{}, err
	}
	meta := stateMeta{Fingerprint: m.fp, SavedAt: time.Now().UTC(), Bytes: st.Size(), Seconds: time.Since(t0).Seconds(), MAC: m.mac}
	if err := store.WriteJSON(sp.stateMeta, meta); err != nil {
		return driver.SnapshotResult{}, err
	}
	pause := resumed.Sub(running)
	if m.d != nil {
		fmt.Fprintf(m.d.opts.Log, "vm %q: snapshot with memory: paused %s (qemu's downtime %d ms, %s after the last pass began), %d MiB in %s\n",
			m.name, pause.Round(time.Millisecond), downtime, resumed.Sub(paused).Round(time.Millisecond), st.Size()>>20, time.Since(t0).Round(time.Millisecond))
	}
	return driver.SnapshotResult{Memory: true, Fingerprint: m.fp.Key(), Pause: pause}, nil
}

// finishTimeout bounds what a snapshot does after its caller may have gone:
// the migration's last pass once the disk switched, the guest's resume, the
// journal's settling. The guest is stopped for the last pass: the copy of
// what it dirtied since the previous pass and its devices.
const finishTimeout = 2 * time.Minute

// abortMigration cancels a migration that has not switched over; the guest
// runs on (QEMU restarts it, or cont does).
func abortMigration(q *QMP, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q.Execute(ctx, "migrate_cancel", nil, nil)
	for {
		st, qerr := q.QueryMigrate(ctx)
		if qerr != nil || (st.Status != "active" && st.Status != "pre-switchover" && st.Status != "device" && st.Status != "cancelling" && st.Status != "setup") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rerr := resumeGuest(ctx, q); rerr != nil {
		err = errors.Join(err, fmt.Errorf("resume the guest: %w", rerr))
	}
	return err
}

// resumeGuest lets a guest that fvm paused run again: after a migration
// (postmigrate) or a stop (paused); a running guest is left alone.
func resumeGuest(ctx context.Context, q *QMP) error {
	st, err := q.QueryStatus(ctx)
	if err != nil {
		return err
	}
	switch st {
	case "paused", "postmigrate", "finish-migrate":
		return q.Execute(ctx, "cont", nil, nil)
	}
	return nil
}

// snapshotDisk is the disk-only snapshot of a running VM: its filesystems
// frozen by the guest agent (when it answers) around the switch, so the
// frozen disk is clean; the guest's own processes never stop.
func (m *Machine) snapshotDisk(ctx context.Context, top, node, vars string) (driver.SnapshotResult, error) {
	var res driver.SnapshotResult
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	frozen := qgaCall(fctx, m.p.qga, "guest-fsfreeze-freeze", nil, nil) == nil
	cancel()
	t0 := time.Now()
	if !frozen {
		res.Notice = "the guest's filesystems could not be frozen (no guest agent answered): the snapshot's disk is as after a power cut"
	}
	err := qmpDo(ctx, m.p.qmp, func(q *QMP) error { return snapshotTop(ctx, q, top, node) })
	if err == nil {
		err = copyFile(m.p.vars, vars)
	}
	if frozen {
		tctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if terr := qgaCall(tctx, m.p.qga, "guest-fsfreeze-thaw", nil, nil); terr != nil {
			err = errors.Join(err, fmt.Errorf("thaw the guest's filesystems: %w", terr))
		}
		cancel()
		res.Pause = time.Since(t0)
	}
	return res, err
}

// settle finishes what a host that died during a snapshot or suspend left
// of it in the running QEMU (a migration paused or completed, the guest
// stopped) and in the disk's journal (settle).
func (m *Machine) settle(ctx context.Context) error {
	layerMu.Lock()
	defer layerMu.Unlock()
	return m.settleLocked(ctx)
}

func (m *Machine) settleLocked(ctx context.Context) error {
	inst := m.inst()
	f, err := loadFacts(inst)
	if err != nil {
		return err
	}
	var top string
	err = qmpDo(ctx, m.p.qmp, func(q *QMP) error {
		st, err := q.QueryMigrate(ctx)
		if err != nil {
			return err
		}
		switch st.Status {
		case "setup", "active", "pre-switchover", "device": // ours: a snapshot or suspend cut short
			if err := abortMigration(q, nil); err != nil {
				return err
			}
		default:
			// A completed snapshot whose guest was not let go again, or a
			// mapped clone's stopped for its copy (memfile.go) by a host that
			// died before the migration began: the switch is journalled. Any
			// other paused guest may be a clone awaiting re-identification:
			// left alone.
			run, err := q.QueryStatus(ctx)
			if err == nil && (run == "postmigrate" || run == "paused" && f.Next != nil && f.MappedMemory) {
				if err := q.Execute(ctx, "cont", nil, nil); err != nil {
					return err
				}
			}
		}
		if f.Next == nil {
			return nil
		}
		top, err = queryTop(ctx, q)
		return err
	})
	if err != nil {
		return fmt.Errorf("vm %q: settle: %w", m.name, err)
	}
	if f.Next != nil {
		if err := settle(inst, top); err != nil {
			return err
		}
		f, _ = loadFacts(inst)
	}
	m.setTop(inst.Path(f.topName()))
	return nil
}

// topPath is the file the VM's disk writes now (a snapshot moves it).
func (m *Machine) topPath() string {
	m.topMu.Lock()
	defer m.topMu.Unlock()
	if m.top == "" {
		return m.p.disk
	}
	return m.top
}

func (m *Machine) setTop(p string) {
	m.topMu.Lock()
	m.top = p
	m.topMu.Unlock()
}

// copyFile copies a VM's firmware variables src to dst (new, 0600), synced;
// src is read as a state file (a regular file, maxVarsFile at most).
func copyFile(src, dst string) error {
	b, err := store.ReadFileLimited(src, maxVarsFile)
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(dst, b, 0o600)
}

var (
	_ driver.Snapshotter     = (*Driver)(nil)
	_ driver.LiveSnapshotter = (*Machine)(nil)
)
