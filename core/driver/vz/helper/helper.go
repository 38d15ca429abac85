// Package helper is the vz helper process (fvm-vz, in fvm.app): it owns one
// VM, built from the driver's device plan with Code-Hex/vz, its user-mode
// network (gvisor-tap-vsock) and, when asked, its display window (an NSWindow
// with a VZVirtualMachineView, built with darwinkit). The host talks to it on
// the VM's control socket (core/driver/vz's protocol).
//
// What does not touch Virtualization.framework is plain Go, built and tested
// on every OS: the process shell (Run: pid file, control socket, signals,
// save and resume), the network, the state fan-out, the main-thread loop and
// the field accessor. The framework's side is in the darwin && cgo files.
package helper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
	"github.com/fvmhq/fvm/core/store"
)

// VM is what the helper runs: a Virtualization.framework VM on macOS, a fake
// in tests. Its methods block until done; none is called on the main thread.
type VM interface {
	// Start boots the VM or, when the plan says RestoreFrom, restores the
	// saved state and resumes it.
	Start(ctx context.Context) error
	// States is the VM's one state-change channel (read by one goroutine).
	States() <-chan vzd.MachineState
	State() vzd.MachineState
	// RequestStop presses the virtual power button.
	RequestStop() error
	// Stop ends the VM at once.
	Stop() error
	// Save pauses the VM and writes its state to path; if that fails the VM
	// runs on.
	Save(path string) error
	// ShowWindow shows the display window and returns its window number.
	ShowWindow(ctx context.Context) (int, error)
	// Freeze pauses the VM, saves its state to saveTo ("" for none), runs
	// during (a snapshot's copies) and resumes the VM, whatever failed; it
	// returns how long the VM was paused.
	Freeze(saveTo string, during func() error) (time.Duration, error)
}

// NewVM builds the VM of a plan, with netFile as its network link.
type NewVM func(plan vzd.Plan, netFile *os.File, log *slog.Logger) (VM, error)

// LoadPlan reads the plan of the VM in dir and checks that it is for dir.
func LoadPlan(dir string) (vzd.Plan, error) {
	var p vzd.Plan
	if err := store.ReadJSON(filepath.Join(dir, vzd.PlanFile), &p); err != nil {
		return p, fmt.Errorf("read the VM's plan: %w", err)
	}
	if p.Version != vzd.PlanVersion {
		return p, fmt.Errorf("plan %s has version %d, this helper reads %d: use the fvm.app that matches your fvm", filepath.Join(dir, vzd.PlanFile), p.Version, vzd.PlanVersion)
	}
	if abs, _ := filepath.Abs(dir); p.Dir != abs {
		return p, fmt.Errorf("plan is for %s, not %s", p.Dir, abs)
	}
	return p, nil
}

// Run owns the VM of the plan in dir until it stops: it writes the pid file,
// brings up the network and the control socket, starts (or resumes) the VM,
// turns SIGTERM/SIGINT into a power-button press (a second one stops the VM)
// and, when the VM has stopped, removes its pid file and socket. A VM that
// ends in an error state makes Run return an error.
func Run(ctx context.Context, dir string, newVM NewVM, log *slog.Logger) (err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	plan, err := LoadPlan(dir)
	if err != nil {
		return err
	}
	pid := os.Getpid()
	if err := store.WriteFileAtomic(plan.Control.PIDFile, []byte(strconv.Itoa(pid)+"\n"), store.PrivateFile); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	defer removeIfOurs(plan.Control.PIDFile, pid)

	nw, err := StartNetwork(plan.Network, log)
	if err != nil {
		return err
	}
	defer nw.Close()
	v, err := newVM(plan, nw.VMFile(), log)
	if err != nil {
		return fmt.Errorf("configure the VM: %w", err)
	}
	fan := newFanout(v.State(), v.States())
	states, unsubscribe := fan.subscribe()
	defer unsubscribe()

	ln, err := vzd.ListenControl(plan.Control.Socket)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer os.Remove(plan.Control.Socket)
	sctx, stopServing := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := vzd.ServeControl(sctx, ln, &shell{plan: plan, vm: v, pid: pid}); err != nil {
			log.Error("control socket", "err", err)
		}
	}()
	defer func() { stopServing(); <-served }() // answers in flight (a suspend's) are sent first

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := v.Start(ctx); err != nil {
		if plan.RestoreFrom != "" {
			return fmt.Errorf("resume from saved state %s: %w (start it with --cold to discard the state and boot afresh)", plan.RestoreFrom, err)
		}
		return fmt.Errorf("start the VM: %w", err)
	}
	if plan.RestoreFrom != "" {
		// Its disk moves on from here: the state must never be restored again.
		if err := os.Remove(plan.RestoreFrom); err != nil {
			log.Error("remove the restored state", "file", plan.RestoreFrom, "err", err)
		}
		log.Info("resumed from saved state", "vm", plan.Name)
	} else {
		log.Info("started", "vm", plan.Name, "pid", pid)
	}
	pressed := false
	up := false // states from before Start (the initial "stopped") are no end
	for {
		select {
		case st, ok := <-states:
			if !ok {
				return errors.New("the VM's state channel closed")
			}
			if st != vzd.StateStopped {
				up = true
			}
			switch {
			case st == vzd.StateStopped && up:
				log.Info("stopped", "vm", plan.Name)
				return nil
			case st == vzd.StateError:
				return errors.New("the VM stopped with an error (see serial.log for the guest's last words)")
			}
		case s := <-sigs:
			if !pressed {
				pressed = true
				log.Info("signal: asking the guest to power off", "signal", s.String())
				if err := v.RequestStop(); err != nil {
					log.Warn("power button failed: stopping the VM", "err", err)
					v.Stop()
				}
				continue
			}
			log.Info("second signal: stopping the VM", "signal", s.String())
			v.Stop()
		case <-ctx.Done():
			v.Stop()
			return ctx.Err()
		}
	}
}

// removeIfOurs removes the pid file if it still names pid.
func removeIfOurs(path string, pid int) {
	if b, err := store.ReadFileLimited(path, 64); err == nil && string(b) == strconv.Itoa(pid)+"\n" {
		os.Remove(path)
	}
}

// shell answers the control socket for the VM.
type shell struct {
	plan vzd.Plan
	vm   VM
	pid  int

	suspend sync.Mutex
}

var _ vzd.Controlled = (*shell)(nil)

func (s *shell) Hello() vzd.Hello {
	return vzd.Hello{Name: s.plan.Name, Dir: s.plan.Dir, PID: s.pid, Protocol: vzd.ControlProtocol}
}

func (s *shell) State() vzd.MachineState { return s.vm.State() }

func (s *shell) RequestStop() error { return s.vm.RequestStop() }

// ShowWindow shows the VM's display window, once windowSession says this
// process can reach a window server: AppKit aborts the process (and the VM
// with it) when there is none.
func (s *shell) ShowWindow(ctx context.Context) (int, error) {
	if err := windowSession(); err != nil {
		return 0, err
	}
	return s.vm.ShowWindow(ctx)
}

// windowSession reports why this process cannot open windows, nil when it
// can; the platform sets it (mainWith).
var windowSession = func() error { return nil }

// ErrNoLoginSession is windowSession's answer for a helper outside a login
// session: started by a host that runs over SSH or under launchd.
var ErrNoLoginSession = errors.New("no display without a login session: this VM's helper runs outside a graphical login (its host was started over SSH or by launchd); " +
	"stop the VM and start it from your login session (fvm.app, or a Terminal there) to open its window; `fvm console` and `fvm ssh` work as they are")

// Suspend saves the VM's state to the plan's SaveTo (through a temporary, so
// a crash never leaves half a state to resume from), then stops the VM; the
// answer goes out before the helper exits.
func (s *shell) Suspend(ctx context.Context) error {
	if s.plan.SaveTo == "" {
		return errors.New("saving a VM's state needs macOS 14+ on Apple silicon")
	}
	if !s.suspend.TryLock() {
		return errors.New("a suspend is already in progress")
	}
	defer s.suspend.Unlock()
	if st := s.vm.State(); st != vzd.StateRunning && st != vzd.StatePaused {
		return fmt.Errorf("the VM is %s, not running", st)
	}
	tmp := filepath.Join(filepath.Dir(s.plan.SaveTo), "."+filepath.Base(s.plan.SaveTo)+".tmp")
	os.Remove(tmp)
	if err := s.vm.Save(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp, s.plan.SaveTo); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save state: %w", err)
	}
	syncDir(filepath.Dir(s.plan.SaveTo))
	go func() {
		if err := s.vm.Stop(); err != nil {
			s.vm.RequestStop()
		}
	}()
	return nil
}

// Snapshot copies the VM into dir, a snapshot's directory (new and empty):
// its disk as a clone (APFS clonefile: instant, and shared until either side
// writes), its firmware variables and machine identifier, and with memory
// its saved state; the VM is paused meanwhile and resumed after.
func (s *shell) Snapshot(ctx context.Context, dir string, memory bool) (time.Duration, error) {
	if memory && s.plan.SaveTo == "" {
		return 0, errors.New("saving a VM's state needs macOS 14+ on Apple silicon")
	}
	if !s.suspend.TryLock() {
		return 0, errors.New("a suspend or snapshot is already in progress")
	}
	defer s.suspend.Unlock()
	if st := s.vm.State(); st != vzd.StateRunning {
		return 0, fmt.Errorf("the VM is %s, not running", st)
	}
	if len(s.plan.Disks) == 0 {
		return 0, errors.New("the VM has no disk")
	}
	var state string
	if memory {
		state = filepath.Join(dir, "."+vzd.StateFile+".tmp")
	}
	pause, err := s.vm.Freeze(state, func() error {
		return vzd.CopySnapshotFiles(ctx, s.plan, dir)
	})
	if err == nil && memory {
		err = os.Rename(state, filepath.Join(dir, vzd.StateFile))
	}
	if err != nil {
		if state != "" {
			os.Remove(state)
		}
		return pause, fmt.Errorf("snapshot: %w", err)
	}
	syncDir(dir)
	return pause, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
