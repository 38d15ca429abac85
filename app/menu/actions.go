package menu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// verbs name each action in error titles ("could not start web1").
var verbs = [numActions]string{
	ActStart:    "start",
	ActStop:     "stop",
	ActRestart:  "restart",
	ActDisplay:  "open the display of",
	ActConsole:  "open the console of",
	ActTerminal: "open a terminal on",
	ActCopySSH:  "copy the SSH command of",
	ActLogs:     "show the logs of",
	ActSnapshot: "snapshot",
	ActClone:    "clone",
	ActDelete:   "delete",
}

// click runs a VM submenu entry for the VM the slot shows right now.
func (m *Menu) click(s *slot, a Action) {
	m.mu.Lock()
	name := s.name
	m.mu.Unlock()
	if name == "" {
		return
	}
	m.run(func() { m.Do(name, a) })
}

// Do performs an action on the named VM, telling the user if it fails.
func (m *Menu) Do(name string, a Action) {
	if err := m.do(context.Background(), name, a); err != nil {
		m.log.Warn("menu action failed", "action", ActionTitles[a], "vm", name, "err", err)
		m.opts.Dialogs.Error(fmt.Sprintf("fvm: could not %s %s", verbs[a], name), oneLine(err))
	}
}

func (m *Menu) do(ctx context.Context, name string, a Action) error {
	c := m.c()
	stop := api.StopRequest{TimeoutSeconds: int(m.opts.StopTimeout.Seconds())}
	var err error
	switch a {
	case ActStart:
		_, err = c.Start(ctx, name)
	case ActStop:
		_, err = c.Stop(ctx, name, stop)
	case ActRestart:
		_, err = c.Restart(ctx, name, stop)
	case ActDisplay:
		return m.openConsole(ctx, name, false)
	case ActConsole:
		if m.opts.ConsoleInTerminal {
			return m.opts.Desktop.OpenTerminal(m.fvmCommand("console", name))
		}
		return m.openConsole(ctx, name, true)
	case ActTerminal:
		return m.opts.Desktop.OpenTerminal(m.fvmCommand("ssh", name))
	case ActCopySSH:
		return m.opts.Desktop.CopyText(m.SSHCommand(name))
	case ActLogs:
		m.mu.Lock()
		far := m.cur.Remote
		m.mu.Unlock()
		if far { // a remote host's files are not here: its CLI shows them
			return m.opts.Desktop.OpenTerminal(m.fvmCommand("logs", "-f", name))
		}
		return m.showLogs(name)
	case ActSnapshot:
		return m.snapshot(ctx, name)
	case ActClone:
		return m.clone(ctx, name)
	case ActDelete:
		return m.delete(ctx, name)
	}
	if err != nil {
		m.Refresh() // the menu shows what the host made of it
	}
	return err
}

// openConsole shows a VM's screen (or, with serial, its serial console): the
// host brings a native window to the front itself; otherwise the web console
// page it answers opens in the app's own window (OpenWindow) or the browser.
func (m *Menu) openConsole(ctx context.Context, name string, serial bool) error {
	if !serial && m.opts.BeforeDisplay != nil {
		m.opts.BeforeDisplay()
	}
	d, err := m.c().Display(ctx, name, api.DisplayRequest{Serial: serial})
	if err != nil {
		return err
	}
	if d.Native {
		return nil
	}
	m.mu.Lock()
	far := m.cur.Remote
	m.mu.Unlock()
	if far { // the remote host's console is on its own 127.0.0.1: tunnel it here (hosts.go)
		if d.URL, err = m.localConsole(d.URL); err != nil {
			return err
		}
	}
	if m.opts.OpenWindow != nil {
		return m.opts.OpenWindow(name, d.URL)
	}
	return m.opts.Desktop.OpenURL(d.URL)
}

// showLogs opens the VM's serial console log and, if there is one, its
// hypervisor log.
func (m *Menu) showLogs(name string) error {
	v, ok := m.vmNamed(name)
	if !ok || v.Dir == "" {
		return fmt.Errorf("vm %q is not known to the host any more", name)
	}
	var opened int
	var errs []error
	for _, p := range v.Logs { // the serial console, then the backend's own logs
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := m.opts.Desktop.OpenText(p); err != nil {
			errs = append(errs, err)
			continue
		}
		opened++
	}
	if opened == 0 && len(errs) == 0 {
		return fmt.Errorf("vm %q has no logs yet: start it first", name)
	}
	return errors.Join(errs...)
}

// delete removes a VM after the user confirms; a running VM is stopped first.
func (m *Menu) delete(ctx context.Context, name string) error {
	v, _ := m.vmNamed(name)
	msg := fmt.Sprintf("Delete the VM %s and its disk? This cannot be undone.", name)
	if v.State.Active() {
		msg += " It is running: it will be stopped first."
	}
	ok, err := m.opts.Dialogs.Confirm("Delete "+name+"?", msg, "Delete")
	if err != nil {
		return fmt.Errorf("cannot ask before deleting: %w", err)
	}
	if !ok {
		return nil
	}
	return m.c().Remove(ctx, name, v.State.Active())
}

// preferences opens the config file, first writing one that documents the
// defaults if there is none.
func (m *Menu) preferences() {
	err := EnsureConfig(m.opts.ConfigFile, m.backendNames())
	if err == nil {
		err = m.opts.Desktop.OpenText(m.opts.ConfigFile)
	}
	if err != nil {
		m.log.Warn("preferences", "err", err)
		m.opts.Dialogs.Error("fvm: could not open the preferences", oneLine(err))
	}
}

// backendNames are the host's backends that run VMs here, preferred first.
func (m *Menu) backendNames() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := m.opts.Client.Host(ctx)
	if err != nil {
		return nil
	}
	return info.BackendNames()
}

func (m *Menu) toggleLogin() {
	l := m.opts.Login
	err := l.SetEnabled(!l.Enabled())
	on := l.Enabled()
	m.mu.Lock()
	// Always set it: GTK flips a check item by itself on click, so the
	// cached value may not be what is on screen.
	m.login.it.SetChecked(on)
	m.login.check = on
	m.mu.Unlock()
	if err != nil {
		m.log.Warn("start at login", "err", err)
		m.opts.Dialogs.Error("fvm: could not change Start at Login", oneLine(err))
	}
}

// What Quit can do with running VMs, by index in QuitChoices (Cancel is the
// dialog's own: dismissing it quits nothing).
const (
	QuitCancel = iota
	QuitLeaveRunning
	QuitStopVMs
	QuitSuspendVMs
)

// QuitChoices are the Quit dialog's choices (a list: three answers and Cancel
// are more than every platform's button dialog holds).
var QuitChoices = []string{
	QuitCancel:       "Cancel",
	QuitSuspendVMs:   "Suspend them: saved to disk, Start resumes each in seconds",
	QuitStopVMs:      "Stop them: a graceful shutdown",
	QuitLeaveRunning: "Leave them running: the next fvm host adopts them",
}

// quitFlow ends the app. When this app hosts running VMs it asks whether to
// stop them or leave them for the next host to adopt (QEMU VMs outlive it).
func (m *Menu) quitFlow() {
	m.mu.Lock()
	running, hosting := m.running(), m.hosting()
	m.mu.Unlock()
	if !hosting || len(running) == 0 {
		m.finish()
		return
	}
	what := fmt.Sprintf("The VM %s is", running[0])
	if len(running) > 1 {
		what = fmt.Sprintf("%d VMs are", len(running))
	}
	msg := fmt.Sprintf("%s running (%s). What should happen to them when fvm quits?", what, strings.Join(running, ", "))
	items := []string{QuitChoices[QuitSuspendVMs], QuitChoices[QuitStopVMs], QuitChoices[QuitLeaveRunning]}
	picked, ok, err := m.opts.Dialogs.Pick("Quit fvm", msg, items)
	choice := QuitCancel
	switch {
	case err != nil:
		// Without a dialog, the choice that loses nothing is to leave them running.
		m.log.Warn("quit dialog failed: leaving VMs running", "err", err)
		choice = QuitLeaveRunning
	case ok:
		choice = max(slices.Index(QuitChoices, picked), QuitCancel)
	}
	switch choice {
	case QuitLeaveRunning:
		m.finish()
	case QuitStopVMs:
		m.stopAll(running, false)
		m.finish()
	case QuitSuspendVMs:
		m.stopAll(running, true)
		m.finish()
	}
}

// stopAll stops (or suspends) VMs in parallel, telling the user about any that would not.
func (m *Menu) stopAll(names []string, suspend bool) {
	m.mu.Lock()
	m.quitting = true
	m.mu.Unlock()
	verb := "Stopping"
	if suspend {
		verb = "Suspending"
	}
	m.setBusy(fmt.Sprintf("%s %d VMs…", verb, len(names)))
	req := api.StopRequest{TimeoutSeconds: int(m.opts.StopTimeout.Seconds()), Save: suspend}
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Go(func() {
			if _, err := m.c().Stop(context.Background(), n, req); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		m.log.Warn("stop vms before quitting", "err", err)
		m.opts.Dialogs.Error("fvm: some VMs did not stop", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
}

func (m *Menu) finish() {
	m.mu.Lock()
	m.quitting = true
	m.busy = "Quitting…"
	m.render()
	m.mu.Unlock()
	if m.opts.Quit != nil {
		m.opts.Quit()
	}
}
