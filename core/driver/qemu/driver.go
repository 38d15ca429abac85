// Package qemu runs VMs with QEMU: a qcow2 overlay on a cached base, UEFI firmware,
// virtio devices and user-mode networking. QEMU runs in its own session so a VM
// outlives the host, which re-adopts it from the pid file after checking that the
// process really is this VM's QEMU.
package qemu

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Options configure the driver; zero values pick the defaults.
type Options struct {
	// QEMUPath finds qemu-system-* for a guest arch (default DefaultQEMUPath).
	QEMUPath func(vm.Arch) (string, error)
	// QEMUImgPath is qemu-img (default: found in PATH).
	QEMUImgPath string
	// FirmwareDirs are searched for UEFI firmware before the usual places.
	FirmwareDirs []string
	// Log receives one-line notices, such as why TCG was chosen (default: discarded).
	Log io.Writer
	// Probe reads the host's acceleration facts (default ProbeHost).
	Probe func() HostProbe
	// StartTimeout bounds the wait for QMP to answer after launch (default 30s).
	StartTimeout time.Duration
	// TCGCacheMiB sizes TCG's translation cache (default DefaultTCGCacheMiB; -1: QEMU's own 1 GiB).
	TCGCacheMiB int
	// CPUProbe reports whether qemuPath starts an arm64 virt machine with -cpu cpu
	// (default: runs it paused once and quits it; the answer is cached per binary).
	CPUProbe func(ctx context.Context, qemuPath, cpu string) error
	// LayersDir is where snapshots' frozen disk layers live, shared by every
	// VM (store.Layout.LayersDir; default: "layers" beside the VMs' directory).
	LayersDir string
	// MaxLayers is how many frozen layers a VM's chain may have under its
	// top before it is flattened (default DefaultMaxLayers).
	MaxLayers int
}

// DefaultTCGCacheMiB is the translation cache fvm gives TCG guests: QEMU's
// 1 GiB default is resident memory on top of the guest's (measured by make bench).
const DefaultTCGCacheMiB = 256

// Driver is the QEMU driver.
type Driver struct {
	opts  Options
	freed atomic.Pointer[func()] // driver.LayerWatcher's callback
}

var _ driver.Driver = (*Driver)(nil)

// New returns a QEMU driver.
func New(opts Options) *Driver {
	if opts.QEMUPath == nil {
		opts.QEMUPath = DefaultQEMUPath
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Probe == nil {
		opts.Probe = ProbeHost
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.TCGCacheMiB == 0 {
		opts.TCGCacheMiB = DefaultTCGCacheMiB
	}
	if opts.CPUProbe == nil {
		opts.CPUProbe = probeCPU
	}
	return &Driver{opts: opts}
}

// Name is "qemu".
func (d *Driver) Name() string { return "qemu" }

// Caps: qcow2 overlays, VMs in QEMU processes of their own that outlive the
// host, a serial port on a socket (and logged), a display served as VNC on a
// socket, screenshots, saved state, warm clones and snapshots, shares, ISO installs, and
// forwards added to the user network while the VM runs. What a VM's spec
// rules out is said here, once: QEMU cannot migrate a VM with shares (so
// neither save it nor clone it), and gives arm64 guests no VM generation ID
// (so no clones of them); an ISO install is never cloned.
func (d *Driver) Caps(_ context.Context, spec *vm.Spec) driver.Caps {
	c := driver.Caps{
		Disk:         driver.DiskQCOW2Overlay,
		OutlivesHost: true,
		SerialAttach: true,
		Display:      driver.DisplayVNC,
		Screenshot:   true,
		SaveState:    true,
		WarmClone:    true,
		Snapshots:    true,
		Shares:       true,
		InstallISO:   true,
		Forwards:     driver.ForwardHypervisor,
		MAC:          GuestMAC(spec), // the host writes it into the seed's network config (mac.go)
		GuestAgent:   true,           // every VM has the agent's port (BuildArgs); its guest may run none
		LogFiles:     []string{LogFile},
	}
	c.Off(driver.CapRosetta, fmt.Sprintf("--rosetta needs the vz backend on an Apple silicon Mac; %s cannot run x86-64 programs through Rosetta", d.Name()))
	if len(spec.Mounts) > 0 {
		c.Off(driver.CapSaveState, "its shared folders are attached: QEMU cannot save a VM with a virtiofs share, nor a 9p one while mounted")
		c.Off(driver.CapWarmClone, "VMs with shared folders boot cold: their share devices are not part of a warm snapshot")
	}
	switch {
	case spec.ISO != "" || spec.AutoInstall || spec.Blank:
		c.Off(driver.CapWarmClone, "a VM installed from an ISO is never cloned")
	case spec.NoSound: // templates have the sound card: no snapshot's device set fits
		c.Off(driver.CapWarmClone, "a VM without a sound card (--sound=false) is not cloned: warm snapshots have one")
	case spec.Arch != "" && !hasVMGenID(spec.Arch):
		c.Off(driver.CapWarmClone, fmt.Sprintf("no warm snapshots of %s VMs: QEMU gives them no VM generation ID device, so clones of one snapshot would share their kernel's random number state for a while after each restore (they boot cold; suspend and resume work)", spec.Arch))
	}
	return c
}

func (d *Driver) qemuImg() (string, error) {
	if d.opts.QEMUImgPath != "" {
		return d.opts.QEMUImgPath, nil
	}
	return lookBinary("qemu-img")
}

// Accel resolves the spec's accelerator on this host, with a notice when it
// falls back to TCG (for the caller to show the user).
func (d *Driver) Accel(spec *vm.Spec) (accel, notice string, err error) {
	return ResolveAccel(spec.Accel, spec.Arch, d.opts.Probe())
}

// Validate checks that this host has QEMU, qemu-img and firmware for the spec's
// arch and can honour its accelerator; errors wrap driver.ErrUnsupported.
func (d *Driver) Validate(_ context.Context, spec *vm.Spec) error {
	unsupported := func(err error) error {
		return fmt.Errorf("vm %q: %w: %w", spec.Name, driver.ErrUnsupported, err)
	}
	qemuPath, err := d.opts.QEMUPath(spec.Arch)
	if err != nil {
		return unsupported(err)
	}
	if _, err := d.qemuImg(); err != nil {
		return unsupported(err)
	}
	if _, err := FindFirmware(spec.Arch, qemuPath, d.opts.FirmwareDirs); err != nil {
		return unsupported(err)
	}
	if _, _, err := d.Accel(spec); err != nil {
		return unsupported(err)
	}
	if spec.AutoInstall {
		return CheckAutoInstallISO(spec.ISO) // the install boot needs the ISO's kernel
	}
	return nil
}

// Create makes the instance's disk (a qcow2 overlay on the base, or on the
// warm snapshot's frozen disk for a clone, or blank for an ISO install), its
// UEFI variable store and its seed. Existing disk and variables are kept.
func (d *Driver) Create(ctx context.Context, inst *store.Instance, in driver.CreateInput) error {
	if len(in.Seed) > 0 {
		if err := store.WriteFileAtomic(inst.Path(store.SeedFile), in.Seed, 0o600); err != nil {
			return fmt.Errorf("vm %q: seed: %w", inst.Spec.Name, err)
		}
	}
	if err := d.createDisk(ctx, inst, in); err != nil {
		return fmt.Errorf("vm %q: %w", inst.Spec.Name, err)
	}
	qemuPath, _ := d.opts.QEMUPath(inst.Spec.Arch) // only a hint where firmware lives
	fw, err := FindFirmware(inst.Spec.Arch, qemuPath, d.opts.FirmwareDirs)
	if err == nil {
		err = ensureVars(inst, fw)
	}
	if err != nil {
		return fmt.Errorf("vm %q: %w", inst.Spec.Name, err)
	}
	return nil
}

// Start launches QEMU detached in its own session and returns once QMP answers.
// It restores opts.Clone, the warm snapshot the host chose; otherwise a VM with
// a saved state (Suspend) resumes from it when it still fits this QEMU and
// device set; otherwise, or when loading fails, it boots cold with a notice.
// A failed start leaves no process, pid file or socket, and its error carries
// QEMU's own message (also in LogFile).
func (d *Driver) Start(ctx context.Context, inst *store.Instance, opts driver.StartOptions) (driver.Machine, error) {
	m, err := d.start(ctx, inst, opts, true)
	if errors.Is(err, errRestore) { // the state is gone now; never worse than a cold boot
		notice := fmt.Sprintf("%v: booted cold instead", err)
		fmt.Fprintf(d.opts.Log, "vm %q: %s\n", inst.Spec.Name, notice)
		if m, err = d.start(ctx, inst, driver.StartOptions{}, false); err == nil {
			m.notice = driver.JoinNotices(m.notice, notice)
		}
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (d *Driver) start(ctx context.Context, inst *store.Instance, opts driver.StartOptions, restore bool) (*Machine, error) {
	spec := &inst.Spec
	p := pathsOf(inst)
	clone := opts.Clone
	fail := func(err error) (*Machine, error) { return nil, fmt.Errorf("vm %q: %w", spec.Name, err) }

	old, _ := loadFacts(inst)
	if pid := proc.ReadPIDFile(p.pid); isOurQEMU(pid, old.QEMU, p.launchedAs(old).pidArg) {
		return fail(fmt.Errorf("already running (qemu pid %d)", pid))
	}
	if err := removeStale(p.launchedAs(old), old.QEMU, 0); err != nil {
		return fail(err)
	}
	layerMu.Lock()
	err := settle(inst, "") // a snapshot a crash interrupted
	layerMu.Unlock()
	if err != nil {
		return fail(err)
	}
	old, _ = loadFacts(inst)
	p.disk = filepath.Join(p.dir, old.topName())
	for _, sock := range p.sockets() {
		if err := store.CheckSocketPath(sock); err != nil {
			return fail(err)
		}
	}
	if !isFile(p.disk) {
		return fail(fmt.Errorf("disk %s is missing: the VM was not created completely; remove it with `fvm rm %s` and run it again", p.disk, spec.Name))
	}
	if err := driver.CheckHostPorts(spec.Ports); err != nil {
		return fail(err)
	}
	sshPort, err := driver.FreeLoopbackPort()
	if err != nil {
		return fail(fmt.Errorf("pick an SSH port: %w", err))
	}
	cfg, qemuPath, notice, err := d.config(ctx, spec, p, isFile(p.seed), p.disk)
	if err != nil {
		return fail(err)
	}
	if err := ensureVars(inst, cfg.Firmware); err != nil {
		return fail(err)
	}
	facts := runFacts{QEMU: qemuPath, PIDArg: p.pid, VMGenID: old.VMGenID, Boot: driver.BootCold, Top: old.Top}
	if facts.VMGenID == "" || (restore && clone != "" && opts.Restore) { // a restored snapshot: its memory repeats, the guest must reseed
		facts.VMGenID = newUUID()
	}
	if facts.VMGenID == "" {
		facts.VMGenID = newUUID()
	}
	facts.MAC = runMAC(spec, old) // stable for the VM's life (mac.go)
	cfg.SSHPort, cfg.VMGenID, cfg.MAC = sshPort, facts.VMGenID, facts.MAC
	if spec.ISO != "" {
		if err := addInstallMedia(&cfg, spec, p); err != nil {
			return fail(err)
		}
	}
	facts.Install = cfg.Kernel != "" && !cfg.KernelBoot
	facts.AgentAtBoot = cfg.KernelBoot
	if cfg.Shares, err = planShares(spec.Mounts, p); err != nil {
		return fail(err)
	}
	if opts.Template && !sharedMemory(cfg) { // its memory where its clones map it (memfile.go)
		// A new, empty file of the store's mode (QEMU would make it 0644) that
		// QEMU sizes; a previous one is the memory of a run that is over.
		if err := os.Remove(p.mem); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
		mf, err := os.OpenFile(p.mem, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fail(err)
		}
		mf.Close()
		cfg.MemoryFile, cfg.MemoryShared, facts.SharedMemory = p.mem, true, true
	}
	if facts.Fingerprint, err = d.fingerprint(ctx, qemuPath, cfg); err != nil {
		notice = driver.JoinNotices(notice, fmt.Sprintf("this run cannot be suspended: %v", err))
	}
	var state *os.File // the saved state to restore, passed as fd 3
	switch {
	case restore && clone != "": // the host decided that it fits (core/warm)
		sp := pathsOf(&store.Instance{Dir: clone})
		if cfg.MemoryFile, err = templateMemory(sp); err != nil {
			return fail(err) // errRestore: a cold boot
		}
		if cfg.MemoryFile != "" && sharedMemory(cfg) {
			return fail(fmt.Errorf("%w: a VM with shared folders cannot map its template's memory", errRestore))
		}
		if state, _, err = store.OpenRegular(sp.state); err != nil {
			return fail(fmt.Errorf("warm snapshot: %w", err))
		}
		cfg.Incoming, facts.Boot = "fd:3", driver.BootClone
		if cfg.MemoryFile != "" {
			cfg.Incoming, facts.MappedMemory = "defer", true // loadIncoming, once QMP answers
		}
		if opts.Restore {
			facts.Boot = driver.BootRestored
		}
	case restore:
		var why string
		if state, why, err = d.savedState(p, facts.Fingerprint); err != nil {
			return fail(err)
		}
		if state != nil {
			cfg.Incoming, facts.Boot = "fd:3", driver.BootResumed
		}
		notice = driver.JoinNotices(notice, why)
	}
	if state != nil {
		defer state.Close()
	}
	if cfg.KernelBoot {
		if err := kernelFiles(&cfg, p, clone, state != nil); err != nil {
			return fail(err)
		}
	}
	args := BuildArgs(cfg)
	if facts.Virtiofsd, err = startShares(cfg.Shares, p); err != nil {
		return fail(err)
	}
	// Saved before launch: a host that crashes right after can still recognise the process.
	rt := store.Runtime{SSHPort: sshPort, Accel: cfg.Accel, StartedAt: time.Now().UTC().Format(time.RFC3339)}
	if err := errors.Join(saveFacts(inst, facts), inst.SaveRuntime(rt)); err != nil {
		killPIDs(facts.Virtiofsd)
		return fail(fmt.Errorf("save runtime: %w", err))
	}
	if notice != "" {
		fmt.Fprintf(d.opts.Log, "vm %q: %s\n", spec.Name, notice)
	}

	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		killPIDs(facts.Virtiofsd)
		return fail(err)
	}
	cmd := exec.Command(qemuPath, args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if state != nil {
		cmd.ExtraFiles = []*os.File{state}
	}
	// Its own session: no signal meant for the host's terminal or process group
	// reaches QEMU, and it lives on when the host exits or crashes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c, err := proc.StartChild(cmd)
	logf.Close()
	if err != nil {
		killPIDs(facts.Virtiofsd)
		return fail(fmt.Errorf("launch %s: %w", qemuPath, err))
	}
	abort := func(err error) (*Machine, error) {
		c.Cmd.Process.Kill()
		<-c.Exited
		killPIDs(facts.Virtiofsd)
		return nil, errors.Join(fmt.Errorf("vm %q: %w", spec.Name, err), removeStale(p, qemuPath, c.Cmd.Process.Pid))
	}
	if err := waitQMP(ctx, c, p, d.opts.StartTimeout); err != nil {
		if state != nil {
			err = fmt.Errorf("%w: %v", errRestore, err)
			if clone == "" {
				removeState(p)
			}
		}
		return abort(err)
	}
	if state != nil && cfg.Incoming == "defer" {
		if err := loadIncoming(ctx, p); err != nil {
			return abort(fmt.Errorf("%w: %v", errRestore, err))
		}
	}
	var clockStale bool
	clockLeft := state != nil && facts.Boot == driver.BootClone
	if state != nil {
		if clockStale, err = d.finishRestore(ctx, c, p, clone != "", clockLeft, spec.DiskBytes); err != nil {
			if errors.Is(err, errRestore) && clone == "" {
				removeState(p) // it cannot be loaded: keeping it would only fail again
			}
			return abort(err)
		}
	}
	privateSockets(p)
	m := newMachine(spec.Name, c.Cmd.Process.Pid, rt, facts, p, c)
	m.notice, m.clockStale, m.clockLeft, m.d = notice, clockStale, clockLeft, d
	m.flattenIfDeep(ctx)
	return m, nil
}

// savedState opens the VM's saved state when it fits fp; one that does not
// is discarded, and why says so for the user.
func (d *Driver) savedState(p paths, fp Fingerprint) (f *os.File, why string, err error) {
	meta, ok := loadState(p)
	if !ok {
		return nil, "", nil
	}
	reason := meta.Fingerprint.differs(fp)
	if fp == (Fingerprint{}) {
		reason = "this QEMU cannot be fingerprinted"
	}
	if reason != "" {
		if err := removeState(p); err != nil {
			return nil, "", err
		}
		return nil, fmt.Sprintf("the saved state was discarded because %s: booting cold", reason), nil
	}
	if f, _, err = store.OpenRegular(p.state); err != nil {
		return nil, "", fmt.Errorf("saved state: %w", err)
	}
	return f, "", nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// privateSockets makes the display and serial sockets 0600. QEMU binds them
// with the host's umask (connecting needs write permission, so 022 already
// keeps others out) inside the 0700 instance directory; this says it outright.
// QEMU has bound them before QMP answers.
func privateSockets(p paths) {
	for _, s := range []string{p.vnc, p.serialSock} {
		os.Chmod(s, 0o600) // absent on a fake QEMU; nothing to tighten then
	}
}

// waitQMP polls until QMP answers, QEMU exits, ctx ends or timeout passes.
func waitQMP(ctx context.Context, c *proc.Child, p paths, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go func() { // a dying QEMU must not keep us waiting for a QMP attempt's timeout
		select {
		case <-c.Exited:
			cancel()
		case <-wctx.Done():
		}
	}()
	// Every 10 ms: a restore's QEMU answers 0.1-0.2 s after its launch, and
	// each tick of the wait is part of a warm clone's (a stat, then one dial).
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if exists(p.qmp) {
			actx, acancel := context.WithTimeout(wctx, 2*time.Second)
			err := qmpDo(actx, p.qmp, func(q *QMP) error { _, err := q.QueryStatus(actx); return err })
			acancel()
			if err == nil {
				return nil
			}
		}
		select {
		case <-tick.C:
			continue
		case <-wctx.Done():
		}
		select {
		case <-c.Exited:
			if msg := proc.LogTail(p.log, 4); msg != "" {
				return fmt.Errorf("qemu failed to start: %s", msg)
			}
			return fmt.Errorf("qemu failed to start (%v) without a message; see %s", c.Err, p.log)
		default:
		}
		if ctx.Err() != nil {
			return fmt.Errorf("start canceled: %w", context.Cause(ctx))
		}
		return fmt.Errorf("qemu did not answer on its QMP socket within %s; see %s", timeout, p.log)
	}
}

// Attach re-adopts a QEMU left by an earlier host. It requires the pid from the
// pid file to be alive and to be this instance's QEMU (same executable, this pid
// file on its command line); otherwise it removes stale files and returns
// driver.ErrNotRunning. A confirmed QEMU whose QMP does not answer is still
// adopted, so that it can be seen (State reports the error) and killed.
func (d *Driver) Attach(ctx context.Context, inst *store.Instance) (driver.Machine, error) {
	facts, err := loadFacts(inst)
	if err != nil {
		return nil, fmt.Errorf("vm %q: %w", inst.Spec.Name, err)
	}
	p := pathsOf(inst).launchedAs(facts)
	pid := proc.ReadPIDFile(p.pid)
	if !isOurQEMU(pid, facts.QEMU, p.pidArg) {
		layerMu.Lock()
		serr := settle(inst, "") // a snapshot the crash that ended it interrupted
		layerMu.Unlock()
		return nil, errors.Join(fmt.Errorf("vm %q: %w", inst.Spec.Name, driver.ErrNotRunning), removeStale(p, facts.QEMU, 0), serr)
	}
	rt, err := inst.LoadRuntime()
	if err != nil {
		return nil, fmt.Errorf("vm %q: %w", inst.Spec.Name, err)
	}
	p.disk = filepath.Join(p.dir, facts.topName())
	m := newMachine(inst.Spec.Name, pid, rt, facts, p, nil)
	m.d = d
	if _, err := m.State(ctx); err != nil {
		fmt.Fprintf(d.opts.Log, "%v\n", err)
	}
	if err := m.settle(ctx); err != nil {
		fmt.Fprintf(d.opts.Log, "%v\n", err)
	}
	m.watchFlattening(ctx)
	return m, nil
}

// Delete makes sure no QEMU of the instance remains; the caller removes the directory.
func (d *Driver) Delete(_ context.Context, inst *store.Instance) error {
	rt, _ := loadFacts(inst)
	p := pathsOf(inst).launchedAs(rt)
	defer killPIDs(rt.Virtiofsd) // they end with QEMU; a stray one goes here
	if pid := proc.ReadPIDFile(p.pid); isOurQEMU(pid, rt.QEMU, p.pidArg) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("vm %q: kill qemu (pid %d): %w", inst.Spec.Name, pid, err)
		}
		for end := time.Now().Add(killWait); isOurQEMU(pid, rt.QEMU, p.pidArg); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				return fmt.Errorf("vm %q: qemu (pid %d) is still there %s after SIGKILL", inst.Spec.Name, pid, killWait)
			}
		}
	}
	return removeStale(p, rt.QEMU, 0)
}
