package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
)

// Suspend and resume. Suspend stops the guest, streams QEMU's migration of
// memory and devices into a file in the VM directory through a descriptor
// handed to QEMU (QMP getfd + "fd:" URI: no shell, no path), and ends QEMU.
// The next Start launches the same command line with -incoming on that file
// (passed as fd 3), lets the guest run once the state is in, deletes the file
// (the disk moves on from here: the state must never be loaded twice), and
// sets the guest's clock through the guest agent.
//
// A state is only restored into the QEMU, firmware and device set that saved
// it (Fingerprint); otherwise, or when loading it fails, the VM boots cold and
// says why.

// stateMeta is saved beside the state; the state counts only with it.
type stateMeta struct {
	Fingerprint Fingerprint `json:"fingerprint"`
	SavedAt     time.Time   `json:"savedAt"`
	Bytes       int64       `json:"bytes"`
	Seconds     float64     `json:"seconds"` // how long saving took
	// MAC is the NIC's address in the saved devices, which a restore brings
	// back and the guest's network config names ("": cloudinit.DefaultMAC,
	// a run from before addresses were per VM). Clones run with it (GuestMAC).
	MAC string `json:"mac,omitempty"`
	// SharedMemory: the state left the guest's memory out; it is MemoryFile
	// beside it, MemoryBytes long (a warm template's: memfile.go).
	SharedMemory bool  `json:"sharedMemory,omitempty"`
	MemoryBytes  int64 `json:"memoryBytes,omitempty"`
}

// Fingerprint is what a saved state depends on: the QEMU that wrote it (its
// version pins the machine type behind q35/virt), the firmware, and the device
// set of the command line (paths, names and ports left out: they are not part
// of the state).
type Fingerprint struct {
	QEMU     string `json:"qemu"`
	Firmware string `json:"firmware"` // sha256 of the firmware code
	Devices  string `json:"devices"`  // sha256 of the normalised command line
}

// Key is one string for the whole fingerprint.
func (f Fingerprint) Key() string {
	h := sha256.Sum256([]byte(f.QEMU + "\x00" + f.Firmware + "\x00" + f.Devices))
	return hex.EncodeToString(h[:])
}

// differs says in words what changed from f to g, "" when nothing did.
func (f Fingerprint) differs(g Fingerprint) string {
	switch {
	case f.QEMU != g.QEMU:
		return fmt.Sprintf("QEMU changed (%q, now %q)", f.QEMU, g.QEMU) // read back from state.json: quoted
	case f.Firmware != g.Firmware:
		return "the UEFI firmware changed"
	case f.Devices != g.Devices:
		return "the VM's devices changed (another fvm, or other settings)"
	}
	return ""
}

// deviceSet normalises cfg to what the saved state depends on.
func deviceSet(cfg Config) string {
	n := cfg
	// The MAC is the VM's identity, not its device set: a clone runs with its
	// snapshot's (GuestMAC), so it never differs between a save and its restore.
	n.Name, n.SSHPort, n.Ports, n.VMGenID, n.Incoming, n.MAC = "", 0, nil, "", "", ""
	// Where the memory lives is not the device set: a clone maps its
	// template's file, and its own saved state resumes without it (memfile.go).
	n.MemoryFile, n.MemoryShared = "", false
	n.AudioDev = ""        // where the sound goes is the host's, not the saved state's
	n.GuestCmdline = false // read at a cold boot only; states saved before its additions existed still fit
	base := func(p string) string {
		if p == "" {
			return ""
		}
		return filepath.Base(p)
	}
	n.Firmware.Code, n.Firmware.Vars = base(n.Firmware.Code), ""
	n.VarsFile, n.Seed, n.SerialLog = base(n.VarsFile), base(n.Seed), base(n.SerialLog)
	if n.Disk != "" { // the top's name changes with each snapshot (layers.go); the state does not care
		n.Disk = DiskFile
	}
	n.QMPSocket, n.PIDFile, n.QGASocket, n.VNCSocket = base(n.QMPSocket), base(n.PIDFile), base(n.QGASocket), base(n.VNCSocket)
	n.SerialSocket = base(n.SerialSocket)
	n.CDROM, n.Kernel, n.Initrd = base(n.CDROM), base(n.Kernel), base(n.Initrd)
	h := sha256.Sum256([]byte(strings.Join(BuildArgs(n), "\x00")))
	return hex.EncodeToString(h[:])
}

// fingerprint of the state a VM with cfg, run by qemuPath, would save.
func (d *Driver) fingerprint(ctx context.Context, qemuPath string, cfg Config) (Fingerprint, error) {
	v, err := d.cachedVersion(ctx, qemuPath)
	if err != nil {
		return Fingerprint{}, err
	}
	fw := kernelBootFirmware // QEMU's own BIOS, part of QEMU's version
	if !cfg.KernelBoot {
		if fw, err = fileDigest(cfg.Firmware.Code); err != nil {
			return Fingerprint{}, fmt.Errorf("firmware: %w", err)
		}
	}
	return Fingerprint{QEMU: v, Firmware: fw, Devices: deviceSet(cfg)}, nil
}

// kernelBootFirmware stands for the firmware in the fingerprint of a direct
// kernel boot. The kernel files are not in it: a restored guest runs the
// kernel in its memory; the files only matter to its next cold boot.
const kernelBootFirmware = "qemu-bios+kernel"

var versions sync.Map // qemu path + size + mtime → version string

func (d *Driver) cachedVersion(ctx context.Context, qemuPath string) (string, error) {
	st, err := os.Stat(qemuPath)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", qemuPath, st.Size(), st.ModTime().UnixNano())
	if v, ok := versions.Load(key); ok {
		return v.(string), nil
	}
	v, err := binaryVersion(ctx, qemuPath)
	if err != nil {
		return "", err
	}
	versions.Store(key, v)
	return v, nil
}

var digests sync.Map // path + size + mtime → sha256

func fileDigest(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano())
	if v, ok := digests.Load(key); ok {
		return v.(string), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	digests.Store(key, sum)
	return sum, nil
}

// HasSavedState reports whether the VM has a complete saved state (driver.StateKeeper).
func (d *Driver) HasSavedState(inst *store.Instance) bool {
	_, ok := loadState(pathsOf(inst))
	return ok
}

// DiscardState removes the VM's saved state, if any (`fvm start --cold`).
func (d *Driver) DiscardState(inst *store.Instance) error { return removeState(pathsOf(inst)) }

func loadState(p paths) (stateMeta, bool) {
	var m stateMeta
	if err := store.ReadJSON(p.stateMeta, &m); err != nil || !isFile(p.state) {
		return stateMeta{}, false
	}
	return m, true
}

// removeState deletes the state and its meta (meta first: without it the state does not count).
func removeState(p paths) error {
	var errs []error
	for _, f := range []string{p.stateMeta, p.state, p.state + partSuffix} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	store.SyncDir(p.dir)
	return errors.Join(errs...)
}

const partSuffix = ".part"

// saveTimeout bounds writing a VM's memory to disk.
const saveTimeout = 10 * time.Minute

// Suspend saves the running VM's memory and device state into its directory and
// ends QEMU (driver.Suspender). On failure the guest runs on as before.
func (m *Machine) Suspend(ctx context.Context) error {
	if m.exited() {
		return fmt.Errorf("vm %q is not running", m.name)
	}
	if m.fp == (Fingerprint{}) {
		return fmt.Errorf("vm %q: its QEMU was started by an fvm that could not save state: restart it once, then suspend", m.name)
	}
	ctx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	t0 := time.Now()
	part := m.p.state + partSuffix
	f, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("vm %q: save state: %w", m.name, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(part)
		// Let the guest go on; a failed suspend must not leave it paused, nor
		// one its caller gave up on (ctx is over then).
		cctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
		defer cancel()
		if cerr := qmpDo(cctx, m.p.qmp, func(q *QMP) error { return abortMigration(q, nil) }); cerr != nil && !m.exited() {
			err = errors.Join(err, fmt.Errorf("resume after the failed save: %w", cerr))
		}
		return fmt.Errorf("vm %q: save state: %w", m.name, err)
	}
	err = qmpDo(ctx, m.p.qmp, func(q *QMP) error {
		if err := cancelJobs(ctx, q); err != nil { // a flattening: its copies so far stay valid
			return err
		}
		if err := q.Execute(ctx, "stop", nil, nil); err != nil {
			return err
		}
		// A snapshot's migration pauses before switching over; this one must
		// not. A template's shared memory stays in its file (memfile.go).
		if err := q.Execute(ctx, "migrate-set-capabilities", saveCaps(m.sharedMem, false), nil); err != nil {
			return err
		}
		// QEMU caps migration at 128 MiB/s by default; a local file takes what the disk gives.
		if err := q.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}, nil); err != nil {
			return err
		}
		if err := q.SendFD(ctx, "fvm-state", f); err != nil {
			return err
		}
		if err := q.Execute(ctx, "migrate", map[string]any{"uri": "fd:fvm-state"}, nil); err != nil {
			return err
		}
		return waitMigration(ctx, q)
	})
	if err != nil {
		return fail(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fail(err)
	}
	st, err := os.Stat(part)
	if err != nil {
		return fail(err)
	}
	meta := stateMeta{Fingerprint: m.fp, SavedAt: time.Now().UTC(), Bytes: st.Size(), Seconds: time.Since(t0).Seconds(), MAC: m.mac}
	if m.sharedMem {
		mst, err := os.Stat(m.p.mem)
		if err != nil {
			return fail(fmt.Errorf("the template's memory file: %w", err))
		}
		meta.SharedMemory, meta.MemoryBytes = true, mst.Size()
	}
	if err := os.Rename(part, m.p.state); err != nil {
		return fail(err)
	}
	if err := store.WriteJSON(m.p.stateMeta, meta); err != nil { // the state counts from here
		os.Remove(m.p.state)
		return fail(err)
	}
	m.end.Ask(true)
	if err := qmpDo(ctx, m.p.qmp, func(q *QMP) error { return q.Quit(ctx) }); err != nil && !m.exited() {
		return m.Kill() // the state is safe; QEMU must go
	}
	select {
	case <-m.end.Gone:
		return nil
	case <-time.After(killWait):
		return m.Kill()
	}
}

// waitMigration polls an outgoing migration until it completed or failed.
func waitMigration(ctx context.Context, q *QMP) error {
	for {
		st, err := q.QueryMigrate(ctx)
		if err != nil {
			return err
		}
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			if st.ErrorMsg != "" {
				return fmt.Errorf("migration %s: %s", st.Status, st.ErrorMsg)
			}
			return fmt.Errorf("migration %s", st.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("migration still %s: %w", st.Status, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// restoreTimeout bounds loading a saved state at start.
const restoreTimeout = 5 * time.Minute

// finishRestore waits until the incoming state is loaded, deletes it (it must
// never be loaded twice: the disk moves on from now), lets the guest run and
// sets its clock (a warm clone's, with leaveClock, is its re-identification's
// to set). A failure to load is errRestore: the caller boots cold.
//
// A clone's state is its snapshot's, shared by every clone: it stays; the
// clone's disk, made at the snapshot's size, grows to diskBytes while the guest
// is still paused (the guest sees the change and the host grows its filesystem).
func (d *Driver) finishRestore(ctx context.Context, c *proc.Child, p paths, clone, leaveClock bool, diskBytes int64) (clockStale bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	for {
		var status string
		qerr := qmpDo(ctx, p.qmp, func(q *QMP) (err error) { status, err = q.QueryStatus(ctx); return })
		select {
		case <-c.Exited:
			return false, fmt.Errorf("%w: %s", errRestore, nonEmpty(proc.LogTail(p.log, 4), "qemu exited while loading it"))
		default:
		}
		if qerr == nil && status != "inmigrate" {
			if status != "paused" && status != "running" && status != "postmigrate" {
				return false, fmt.Errorf("%w: qemu is %s after loading it", errRestore, status)
			}
			break
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("%w: still loading after %s", errRestore, restoreTimeout)
		}
		time.Sleep(10 * time.Millisecond) // a clone waits on each tick
	}
	if !clone {
		if err := removeState(p); err != nil {
			return false, fmt.Errorf("remove the loaded state: %w", err)
		}
	} else if err := growDisk(ctx, p, diskBytes); err != nil {
		return false, err
	}
	if err := qmpDo(ctx, p.qmp, func(q *QMP) error { return q.Execute(ctx, "cont", nil, nil) }); err != nil {
		return false, fmt.Errorf("resume the guest: %w", err)
	}
	if leaveClock {
		return false, nil // a warm clone's re-identification sets it (driver.MachineInfo.ClockLeft)
	}
	tctx, tcancel := context.WithTimeout(ctx, 5*time.Second)
	defer tcancel()
	if err := setGuestTime(tctx, p.qga, time.Now()); err != nil {
		fmt.Fprintf(d.opts.Log, "guest clock not set by the guest agent: %v\n", err)
		return true, nil // the host sets it over SSH
	}
	return false, nil
}

// errRestore marks a saved state that could not be loaded.
var errRestore = errors.New("the saved state could not be loaded")

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

var (
	_ driver.Suspender   = (*Machine)(nil)
	_ driver.StateKeeper = (*Driver)(nil)
)
