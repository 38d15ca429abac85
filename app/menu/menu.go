package menu

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/remote"
)

// Menu is the tray menu of the fvm host. Build it with New, then Run it.
type Menu struct {
	opts Options
	tray Tray
	log  *slog.Logger

	status      *view
	hosts       *hostMenu // nil without Options.Hosts (hosts.go)
	slots       []*slot
	more, empty *view
	newVM       *view
	prefs       *view
	login       *view
	quit        *view

	refreshc chan struct{} // capacity 1: refresh requests coalesce
	wg       sync.WaitGroup

	mu       sync.Mutex
	vms      []api.VM      // sorted by name, as last listed
	host     *api.HostInfo // nil until the host answered on this connection
	hostErr  error         // why the host is unreachable, nil when it answers
	busy     string        // overrides the status line during long work (quitting)
	quitting bool
	tooltip  string // as last set on the tray

	// The host shown (hosts.go): its choice, its client, and a generation
	// that grows with each pick, so answers of the previous host are dropped.
	choices      []HostChoice
	storeCur     string // the context `fvm context use` picked: what the CLI uses without --context
	cur          HostChoice
	client       Client
	gen          int
	cancelFollow context.CancelFunc // ends Run's following of the host shown
	tunnel       *consoleTunnel     // to the remote host's web console shown now
}

// New builds the menu into tray. Nothing talks to the host until Run.
func New(tray Tray, opts Options) *Menu {
	if opts.FvmPath == "" {
		opts.FvmPath = "fvm"
	}
	if opts.SelfPID == 0 {
		opts.SelfPID = os.Getpid()
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 16
	}
	if opts.Settle <= 0 {
		opts.Settle = 250 * time.Millisecond
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 250 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(5*time.Second, opts.BackoffMin)
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 60 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.HostPool <= 0 {
		opts.HostPool = 8
	}
	if opts.RemoteTimeout <= 0 {
		opts.RemoteTimeout = 45 * time.Second
	}
	m := &Menu{opts: opts, tray: tray, log: opts.Log, refreshc: make(chan struct{}, 1)}
	m.client = opts.Client
	m.cur = HostChoice{Name: remote.DefaultContext, Label: "this machine"}
	if opts.Hosts != nil {
		if choices, cur, err := opts.Hosts.Choices(); err == nil {
			m.choices, m.storeCur = choices, cur
			for _, ch := range choices {
				if ch.Name == cur && ch.Remote {
					if c, err := opts.Hosts.Connect(cur); err == nil {
						m.cur, m.client = ch, c
					}
				}
			}
		} else {
			m.log.Warn("list contexts", "err", err)
		}
	}
	m.build()
	m.mu.Lock()
	m.renderHosts()
	m.mu.Unlock()
	return m
}

// Titles of the fixed entries.
const (
	TitleNewVM   = "New VM…"
	TitlePrefs   = "Preferences…"
	TitleLogin   = "Start at Login"
	TitleQuit    = "Quit fvm"
	titleNoVMs   = "No VMs yet: New VM… or `fvm run`"
	titleConnect = "fvm: connecting to the host…"
)

// build adds every item once; later changes only retitle, hide and show,
// because tray menus cannot remove items or insert them in the middle.
func (m *Menu) build() {
	m.tray.SetTooltip("fvm")
	m.tooltip = "fvm"
	m.status = m.fixed(titleConnect, nil)
	m.status.enable(false)
	m.buildHosts()
	m.tray.AddSeparator()
	for range m.opts.PoolSize {
		m.slots = append(m.slots, m.newSlot())
	}
	m.more = m.fixed("", nil)
	m.more.enable(false)
	m.more.show(false)
	m.empty = m.fixed(titleNoVMs, nil)
	m.empty.enable(false)
	m.empty.show(false)
	m.tray.AddSeparator()
	m.newVM = m.fixed(TitleNewVM, m.newVMFlow)
	m.prefs = m.fixed(TitlePrefs, m.preferences)
	if m.opts.Login != nil {
		on := m.opts.Login.Enabled()
		it := m.tray.AddCheckbox(TitleLogin, "Start fvm when you log in", on)
		m.login = newView(it, TitleLogin)
		m.login.check = on
		it.OnClick(func() { m.run(m.toggleLogin) })
	}
	m.tray.AddSeparator()
	m.quit = m.fixed(TitleQuit, m.quitFlow)
}

func (m *Menu) fixed(title string, onClick func()) *view {
	it := m.tray.AddItem(title, "")
	if onClick != nil {
		it.OnClick(func() { m.run(onClick) })
	}
	return newView(it, title)
}

// run does a click's work off the tray's thread; Wait waits for it.
func (m *Menu) run(fn func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
}

// Wait waits for the work of earlier clicks to finish.
func (m *Menu) Wait() { m.wg.Wait() }

// setVMs records a fresh listing of the host of generation gen and redraws.
func (m *Menu) setVMs(gen int, vms []api.VM) {
	sort.Slice(vms, func(i, j int) bool { return vms[i].Spec.Name < vms[j].Spec.Name })
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen {
		return // the listing of a host no longer shown
	}
	m.vms = vms // whether the host is up is the event stream's call
	m.render()
}

// setHost records who hosts the VMs (nil info and an error: nobody reachable).
func (m *Menu) setHost(gen int, info *api.HostInfo, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen {
		return
	}
	m.host, m.hostErr = info, err
	m.render()
}

func (m *Menu) setBusy(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.busy = s
	m.render()
}

// render draws the state into the tray; m.mu must be held.
func (m *Menu) render() {
	m.renderHosts()
	shown := min(len(m.vms), len(m.slots))
	for i, s := range m.slots {
		if i < shown && m.hostErr == nil {
			s.show(m.vms[i])
		} else {
			s.hide()
		}
	}
	extra := len(m.vms) - shown
	m.more.set(fmt.Sprintf("%d more VMs: see `fvm ps`", extra), "", false)
	m.more.show(extra > 0 && m.hostErr == nil)
	m.empty.show(len(m.vms) == 0 && m.hostErr == nil && m.host != nil)
	m.newVM.enable(m.hostErr == nil && !m.quitting)
	// The status line goes last: it sums up the rest, so whoever sees it
	// change (a person, a test) sees the items it speaks of already drawn.
	tip := ""
	if m.hostErr != nil {
		tip = m.hostErr.Error()
	}
	m.status.set(m.statusLine(), tip, false)
	running := m.running()
	tip = "fvm"
	if len(running) > 0 {
		tip = fmt.Sprintf("fvm: %d running", len(running))
	}
	if tip != m.tooltip {
		m.tray.SetTooltip(tip)
		m.tooltip = tip
	}
}

// statusLine is the first, disabled line: who hosts the VMs and how many run.
func (m *Menu) statusLine() string {
	if m.busy != "" {
		return m.busy
	}
	if m.cur.Remote {
		switch {
		case m.hostErr != nil:
			return truncate(m.cur.Label+": not reachable: "+oneLine(m.hostErr), 90)
		case m.host == nil:
			return "fvm: connecting to " + m.cur.Label + "…"
		}
	}
	if m.hostErr != nil {
		return "fvm host not reachable: retrying…"
	}
	if m.host == nil {
		return titleConnect
	}
	who := fmt.Sprintf("fvm host pid %d", m.host.PID)
	if m.cur.Remote {
		who = m.cur.Label + ": fvm host"
		if m.host.Hostname != "" {
			who += " on " + m.host.Hostname
		}
	} else if m.host.PID == m.opts.SelfPID {
		who = "fvm host: this app"
	}
	if m.host.Version != "" {
		who += " (" + m.host.Version + ")"
	}
	return fmt.Sprintf("%s · %d of %d VMs running", who, len(m.running()), len(m.vms))
}

// running lists the VMs a quit would leave running; m.mu must be held.
func (m *Menu) running() []string {
	var names []string
	for _, v := range m.vms {
		if v.State.Active() {
			names = append(names, v.Spec.Name)
		}
	}
	return names
}

// hosting reports whether this process hosts the VMs; m.mu must be held.
func (m *Menu) hosting() bool { return !m.cur.Remote && m.host != nil && m.host.PID == m.opts.SelfPID }

// vmNamed returns the last listed state of a VM.
func (m *Menu) vmNamed(name string) (api.VM, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range m.vms {
		if v.Spec.Name == name {
			return v, true
		}
	}
	return api.VM{}, false
}

// oneLine makes an error fit a dialog: its first line.
func oneLine(err error) string {
	return strings.TrimSpace(firstLine(err.Error()))
}
