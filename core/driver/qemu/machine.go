package qemu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// killWait bounds how long Kill and Delete wait for the process to vanish.
const killWait = 10 * time.Second

// paths are the absolute paths of an instance's files; the pid file path is also
// how a QEMU process is recognised (its -pidfile argument), so it must be stable.
type paths struct {
	dir, disk, seed, vars, pid, qmp, serial, log string
	pidArg                                       string // the -pidfile QEMU was launched with (launchedAs)
	qga, state, stateMeta                        string // guest agent, saved state
	mem                                          string // a warm template's memory (memfile.go)
	vnc, serialSock                              string // display and serial port sockets
	kernel, initrd                               string // ISO installs
}

func pathsOf(inst *store.Instance) paths {
	dir, err := filepath.Abs(inst.Dir)
	if err != nil {
		dir = inst.Dir
	}
	j := func(n string) string { return filepath.Join(dir, n) }
	sock := func(n string) string { return store.SocketPath(dir, n) } // short enough to bind (store/sockets.go)
	return paths{dir: dir, disk: j(DiskFile), seed: j(store.SeedFile), vars: j(store.EFIVarsFile),
		pid: j(PIDFile), pidArg: j(PIDFile), qmp: sock(QMPSocket), serial: j(store.SerialLog), log: j(LogFile),
		qga: sock(QGASocket), state: j(StateFile), stateMeta: j(StateMetaFile), mem: j(MemoryFile), vnc: sock(VNCSocket), serialSock: sock(SerialSocket),
		kernel: j(InstallerKernel), initrd: j(InstallerInitrd)}
}

// isOurQEMU reports whether pid is alive and is the QEMU started for this
// instance: the same executable, with this instance's pid file on its command
// line. A pid file alone proves nothing: pids are reused, by other QEMUs too.
func isOurQEMU(pid int, qemuPath, pidFile string) bool {
	if pid <= 0 || qemuPath == "" {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	exe, args, err := proc.Info(pid)
	if err != nil || !proc.SamePath(exe, qemuPath) {
		return false
	}
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-pidfile" && args[i+1] == pidFile {
			return true
		}
	}
	return false
}

// launchedAs is p for a run whose facts f say where QEMU's pid file was
// when it was launched: a directory renamed while QEMU runs (a spare clone
// handed over under its VM's name) keeps the old path on QEMU's command line.
func (p paths) launchedAs(f runFacts) paths {
	if f.PIDArg != "" {
		p.pidArg = f.PIDArg
	}
	return p
}

// sockets are the Unix sockets QEMU serves, for the length and mode checks.
func (p paths) sockets() []string { return []string{p.qmp, p.vnc, p.serialSock, p.qga} }

// removeStale deletes the pid file and sockets a dead QEMU left, unless a live
// QEMU of this instance (another than pid) owns them by now.
func removeStale(p paths, qemuPath string, pid int) error {
	if cur := proc.ReadPIDFile(p.pid); cur != 0 && cur != pid && isOurQEMU(cur, qemuPath, p.pidArg) {
		return nil
	}
	dumps, _ := filepath.Glob(filepath.Join(p.dir, ScreenDumps)) // a host that died mid-screenshot
	return errors.Join(proc.RemoveFiles(append(append([]string{p.pid}, p.sockets()...), dumps...)...), p.dropAlias())
}

// dropAlias removes the link Moved left at the directory QEMU was launched
// in, once that QEMU is gone: only a link, and only one to this directory.
func (p paths) dropAlias() error {
	from := filepath.Dir(p.pidArg)
	if from == p.dir {
		return nil
	}
	if to, err := os.Readlink(from); err != nil || filepath.Join(filepath.Dir(from), to) != p.dir {
		return nil
	}
	if err := os.Remove(from); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Machine is a running QEMU, started by this host or adopted from an earlier one.
type Machine struct {
	name        string
	pid         int
	qemu        string
	accel       string
	sshPort     int
	started     time.Time
	notice      string // why TCG, for the user (set by Start)
	boot        string // driver.BootCold, BootResumed, BootClone
	clockStale  bool
	clockLeft   bool // a warm clone's clock, left to its re-identification
	virtiofsd   []int
	fp          Fingerprint
	mac         string // the NIC's address (runFacts.MAC), recorded with a saved state
	p           paths
	child       *proc.Child // nil when adopted
	install     bool        // an unattended install boot (runFacts.Install)
	agentAtBoot bool        // runFacts.AgentAtBoot
	sharedMem   bool        // runFacts.SharedMemory: a warm template's memory, in p.mem
	mappedMem   bool        // runFacts.MappedMemory: a clone's, over its template's file
	d           *Driver     // its driver (layers, qemu-img)
	topMu       sync.Mutex
	top         string // the disk's top when a snapshot moved it from p.disk

	end *proc.Ending // Gone is closed after the process vanished and its files were removed
}

func newMachine(name string, pid int, rt store.Runtime, f runFacts, p paths, c *proc.Child) *Machine {
	m := &Machine{name: name, pid: pid, qemu: f.QEMU, accel: rt.Accel, sshPort: rt.SSHPort, p: p, child: c,
		install: f.Install, agentAtBoot: f.AgentAtBoot, boot: f.Boot, sharedMem: f.SharedMemory, mappedMem: f.MappedMemory, fp: f.Fingerprint, mac: f.MAC, virtiofsd: f.Virtiofsd, end: proc.NewEnding()}
	m.started, _ = time.Parse(time.RFC3339, rt.StartedAt)
	go m.watch()
	return m
}

// watch records the end of QEMU (proc.Ending.Watch).
func (m *Machine) watch() {
	m.end.Watch(m.name, m.child, func() bool { return isOurQEMU(m.pid, m.qemu, m.p.pidArg) },
		func(err error) error {
			return fmt.Errorf("vm %q: qemu exited: %w%s", m.name, err, proc.TailSuffix(m.p.log, 4))
		},
		func() error { return removeStale(m.p, m.qemu, m.pid) })
}

func (m *Machine) exited() bool { return m.end.Exited() }

// Info is QEMU's pid, the accelerator it runs with (kvm, hvf or tcg) and why
// TCG was chosen, if it was.
func (m *Machine) Info() driver.MachineInfo {
	return driver.MachineInfo{PID: m.pid, Accel: m.accel, Notice: m.notice, StartedAt: m.started, Boot: m.boot, ClockStale: m.clockStale, ClockLeft: m.clockLeft, AgentAtBoot: m.agentAtBoot}
}

// Done is closed, after one value, when the QEMU process has ended.
func (m *Machine) Done() <-chan error { return m.end.Done }

// SSHEndpoint is the host side of the guest's port 22 forward.
func (m *Machine) SSHEndpoint(context.Context) (netip.AddrPort, error) {
	if m.sshPort <= 0 || m.sshPort > 65535 {
		return netip.AddrPort{}, fmt.Errorf("vm %q: no SSH port recorded", m.name)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(m.sshPort)), nil
}

// State derives the state from the live process and QMP's query-status.
func (m *Machine) State(ctx context.Context) (vm.State, error) {
	if m.exited() || !isOurQEMU(m.pid, m.qemu, m.p.pidArg) {
		return vm.Stopped, nil
	}
	var status string
	err := qmpDo(ctx, m.p.qmp, func(q *QMP) (err error) { status, err = q.QueryStatus(ctx); return })
	if err != nil {
		if m.exited() {
			return vm.Stopped, nil
		}
		return vm.Error, fmt.Errorf("vm %q: qemu (pid %d) does not answer on QMP: %w", m.name, m.pid, err)
	}
	st := stateOf(status)
	if st == vm.Running && m.end.Stopping() {
		st = vm.Stopping
	}
	if dead := deadShare(m.virtiofsd); dead != "" && st == vm.Running {
		return vm.Error, fmt.Errorf("vm %q: the %s of a shared folder exited: the share is gone until the VM restarts (`fvm restart %s`)", m.name, dead, m.name)
	}
	return st, nil
}

// stateOf maps QEMU's RunState to fvm's states. Paused and suspended guests still
// hold a running QEMU, so they count as running.
func stateOf(status string) vm.State {
	switch status {
	case "prelaunch", "inmigrate", "restore-vm":
		return vm.Starting
	case "shutdown":
		return vm.Stopping
	case "guest-panicked", "internal-error", "io-error":
		return vm.Error
	}
	return vm.Running
}

// Shutdown presses the ACPI power button; the guest decides when to power off.
func (m *Machine) Shutdown(ctx context.Context) error {
	return m.end.Shutdown(m.name, func() error { return qmpDo(ctx, m.p.qmp, func(q *QMP) error { return q.SystemPowerdown(ctx) }) })
}

// Kill ends QEMU with SIGKILL and waits until it is gone and its files removed.
func (m *Machine) Kill() error {
	return m.end.Kill(m.name, m.pid, "qemu", isOurQEMU(m.pid, m.qemu, m.p.pidArg), killWait)
}

var (
	_ driver.Machine       = (*Machine)(nil)
	_ driver.InstallBoot   = (*Machine)(nil)
	_ driver.Screenshotter = (*Machine)(nil)
)

// Freeze stops the guest's CPUs in place (QMP stop); QEMU and its sockets
// stay (driver.Freezer).
func (m *Machine) Freeze(ctx context.Context) error {
	return qmpDo(ctx, m.p.qmp, func(q *QMP) error { return q.Execute(ctx, "stop", nil, nil) })
}

// Moved leaves a link at from, the directory QEMU was launched in, to to,
// where it is now: QEMU keeps the paths it was given and opens a disk or the
// firmware's variables again by name when their access changes (a suspend
// inactivates them, a snapshot moves the top). The link goes with QEMU
// (dropAlias).
func (m *Machine) Moved(from, to string) error {
	if filepath.Dir(from) != filepath.Dir(to) {
		return fmt.Errorf("vm %q: moved from %s to %s: not a rename within one directory", m.name, from, to)
	}
	return os.Symlink(filepath.Base(to), from)
}

// Thaw lets a frozen guest go on (QMP cont).
func (m *Machine) Thaw(ctx context.Context) error {
	return qmpDo(ctx, m.p.qmp, func(q *QMP) error { return q.Execute(ctx, "cont", nil, nil) })
}
