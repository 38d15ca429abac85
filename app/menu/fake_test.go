package menu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// fakeTray records the menu tree; its lock stands in for the tray's thread.
type fakeTray struct {
	mu      sync.Mutex
	root    fakeItem
	tooltip string
	calls   int // tray calls after build, to check that refreshes are minimal
}

type fakeItem struct {
	tray                      *fakeTray
	title, tooltip            string
	enabled, visible, checked bool
	separator                 bool
	children                  []*fakeItem
	onClick                   func()
}

func newFakeTray() *fakeTray {
	t := &fakeTray{}
	t.root.tray = t
	return t
}

func (t *fakeTray) add(parent *fakeItem, title, tooltip string) *fakeItem {
	t.mu.Lock()
	defer t.mu.Unlock()
	it := &fakeItem{tray: t, title: title, tooltip: tooltip, enabled: true, visible: true}
	parent.children = append(parent.children, it)
	return it
}

func (t *fakeTray) AddItem(title, tooltip string) Item { return t.add(&t.root, title, tooltip) }
func (t *fakeTray) AddCheckbox(title, tooltip string, checked bool) Item {
	it := t.add(&t.root, title, tooltip)
	it.checked = checked
	return it
}
func (t *fakeTray) AddSeparator()   { t.add(&t.root, "", "").separator = true }
func (t *fakeTray) SetTitle(string) {}
func (t *fakeTray) SetTooltip(s string) {
	t.mu.Lock()
	t.tooltip = s
	t.mu.Unlock()
}

func (it *fakeItem) edit(fn func()) {
	it.tray.mu.Lock()
	defer it.tray.mu.Unlock()
	it.tray.calls++
	fn()
}
func (it *fakeItem) AddSubItem(title, tooltip string) Item { return it.tray.add(it, title, tooltip) }
func (it *fakeItem) SetTitle(s string)                     { it.edit(func() { it.title = s }) }
func (it *fakeItem) SetTooltip(s string)                   { it.edit(func() { it.tooltip = s }) }
func (it *fakeItem) SetChecked(on bool)                    { it.edit(func() { it.checked = on }) }
func (it *fakeItem) Enable()                               { it.edit(func() { it.enabled = true }) }
func (it *fakeItem) Disable()                              { it.edit(func() { it.enabled = false }) }
func (it *fakeItem) Hide()                                 { it.edit(func() { it.visible = false }) }
func (it *fakeItem) Show()                                 { it.edit(func() { it.visible = true }) }
func (it *fakeItem) OnClick(fn func())                     { it.onClick = fn }

// snapshot is a visible item as the user sees it.
type snapshot struct {
	Title            string
	Enabled, Checked bool
	Children         []snapshot
}

// visible returns the visible top-level items, with their visible children.
func (t *fakeTray) visible() []snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	var walk func(items []*fakeItem) []snapshot
	walk = func(items []*fakeItem) []snapshot {
		var out []snapshot
		for _, it := range items {
			if !it.visible || it.separator {
				continue
			}
			out = append(out, snapshot{Title: it.title, Enabled: it.enabled, Checked: it.checked, Children: walk(it.children)})
		}
		return out
	}
	return walk(t.root.children)
}

// find returns the visible item at a path of titles; a path element ending in
// "*" matches by prefix.
func (t *fakeTray) find(path ...string) (snapshot, bool) {
	items := t.visible()
	var cur snapshot
	for _, p := range path {
		found := false
		for _, it := range items {
			if it.Title == p || (strings.HasSuffix(p, "*") && strings.HasPrefix(it.Title, strings.TrimSuffix(p, "*"))) {
				cur, items, found = it, it.Children, true
				break
			}
		}
		if !found {
			return snapshot{}, false
		}
	}
	return cur, true
}

// click clicks the visible, enabled item at path, as the tray would.
func (t *fakeTray) click(tb testing.TB, path ...string) {
	tb.Helper()
	t.mu.Lock()
	items := t.root.children
	var target *fakeItem
	for _, p := range path {
		target = nil
		for _, it := range items {
			if it.visible && (it.title == p || (strings.HasSuffix(p, "*") && strings.HasPrefix(it.title, strings.TrimSuffix(p, "*")))) {
				target = it
				break
			}
		}
		if target == nil {
			t.mu.Unlock()
			tb.Fatalf("no visible item %q in %q", p, path)
			return
		}
		items = target.children
	}
	fn, enabled := target.onClick, target.enabled
	t.mu.Unlock()
	if !enabled {
		tb.Fatalf("item %q is disabled", path)
	}
	if fn == nil {
		tb.Fatalf("item %q has no click handler", path)
	}
	fn()
}

// fakeClient is a host with VMs in memory; events are pushed by the test.
type fakeClient struct {
	mu       sync.Mutex
	vms      map[string]api.VM
	images   []api.Image
	pid      int
	calls    []string
	lists    int
	hostErr  error          // Host fails with it while set
	events   chan api.Event // what Events streams
	drop     chan struct{}  // closing ends the current stream with an error
	streams  int            // Events calls so far
	created  []api.CreateRequest
	startErr error
	native   bool // Display answers "shown natively"
	hostName string
	block    bool  // Host waits for its context to end (an unreachable remote host)
	consoles []int // DialConsole's local ports
}

func newFakeClient(vms ...api.VM) *fakeClient {
	c := &fakeClient{vms: map[string]api.VM{}, pid: 4242, events: make(chan api.Event, 16), drop: make(chan struct{})}
	for _, v := range vms {
		c.vms[v.Spec.Name] = v
	}
	return c
}

func mkVM(name string, s vm.State) api.VM {
	return api.VM{Spec: vm.Spec{Name: name, Image: "debian-local", CPUs: 2, MemoryMiB: 2048}, State: s}
}

func (c *fakeClient) record(format string, args ...any) {
	c.mu.Lock()
	c.calls = append(c.calls, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

func (c *fakeClient) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func (c *fakeClient) set(v api.VM) {
	c.mu.Lock()
	c.vms[v.Spec.Name] = v
	c.mu.Unlock()
}

func (c *fakeClient) Host(ctx context.Context) (api.HostInfo, error) {
	c.mu.Lock()
	block := c.block
	c.mu.Unlock()
	if block {
		<-ctx.Done()
		return api.HostInfo{}, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hostErr != nil {
		return api.HostInfo{}, c.hostErr
	}
	return api.HostInfo{PID: c.pid, Version: "test", Hostname: c.hostName}, nil
}

// DialConsole answers one HTTP request with the page's path, as a console would.
func (c *fakeClient) DialConsole(_ context.Context, port int) (net.Conn, error) {
	c.mu.Lock()
	c.consoles = append(c.consoles, port)
	c.mu.Unlock()
	a, b := net.Pipe()
	go func() {
		defer b.Close()
		req, err := http.ReadRequest(bufio.NewReader(b))
		if err != nil {
			return
		}
		body := "console " + req.Host + " " + req.URL.Path
		fmt.Fprintf(b, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	}()
	return a, nil
}

func (c *fakeClient) List(context.Context) ([]api.VM, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lists++
	if c.hostErr != nil {
		return nil, c.hostErr
	}
	var out []api.VM
	for _, v := range c.vms {
		out = append(out, v)
	}
	return out, nil
}

func (c *fakeClient) listCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists
}

func (c *fakeClient) Images(context.Context) ([]api.Image, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.images, nil
}

func (c *fakeClient) Create(_ context.Context, req api.CreateRequest) (api.VM, error) {
	c.mu.Lock()
	c.created = append(c.created, req)
	c.mu.Unlock()
	c.record("create %s", req.Spec.Name)
	return api.VM{Spec: req.Spec, State: vm.Starting}, nil
}

func (c *fakeClient) Start(_ context.Context, name string) (api.VM, error) {
	c.record("start %s", name)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.vms[name], c.startErr
}

func (c *fakeClient) Stop(_ context.Context, name string, req api.StopRequest) (api.VM, error) {
	save := ""
	if req.Save {
		save = " save"
	}
	c.record("stop %s force=%v timeout=%d%s", name, req.Force, req.TimeoutSeconds, save)
	return api.VM{}, nil
}

func (c *fakeClient) Restart(_ context.Context, name string, req api.StopRequest) (api.VM, error) {
	c.record("restart %s", name)
	return api.VM{}, nil
}

func (c *fakeClient) Remove(_ context.Context, name string, force bool) error {
	c.record("remove %s force=%v", name, force)
	return nil
}

func (c *fakeClient) Display(_ context.Context, name string, req api.DisplayRequest) (api.Display, error) {
	c.record("display %s serial=%v", name, req.Serial)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.native {
		return api.Display{Native: true, State: c.vms[name].State}, nil
	}
	u := "http://127.0.0.1:4711/vm/" + name + "/?token=t"
	if req.Serial {
		u += "#serial"
	}
	return api.Display{URL: u, State: c.vms[name].State}, nil
}

func (c *fakeClient) Events(ctx context.Context, fn func(api.Event)) error {
	c.mu.Lock()
	c.streams++
	drop := c.drop
	c.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-drop:
			return errors.New("stream dropped")
		case ev := <-c.events:
			fn(ev)
		}
	}
}

func (c *fakeClient) streamCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams
}

// fakeDialogs answers from fields and records what it was asked.
type fakeDialogs struct {
	mu      sync.Mutex
	confirm bool
	choose  int
	picks   []string // answers to Pick, in order; "" cancels
	entry   string
	err     error
	asked   []string
	errors  []string
}

func (d *fakeDialogs) note(s string) {
	d.mu.Lock()
	d.asked = append(d.asked, s)
	d.mu.Unlock()
}
func (d *fakeDialogs) Confirm(title, msg, ok string) (bool, error) {
	d.note("confirm: " + msg)
	return d.confirm, d.err
}
func (d *fakeDialogs) Choose(title, msg string, buttons []string) (int, error) {
	d.note("choose: " + msg)
	return d.choose, d.err
}
func (d *fakeDialogs) Pick(title, msg string, items []string) (string, bool, error) {
	d.note("pick: " + msg + " " + strings.Join(items, "|"))
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.picks) == 0 {
		return "", false, d.err
	}
	p := d.picks[0]
	d.picks = d.picks[1:]
	return p, p != "", d.err
}
func (d *fakeDialogs) Entry(title, msg, initial string) (string, bool, error) {
	d.note("entry: " + msg)
	return d.entry, true, d.err
}
func (d *fakeDialogs) Error(title, msg string) {
	d.mu.Lock()
	d.errors = append(d.errors, title+": "+msg)
	d.mu.Unlock()
}
func (d *fakeDialogs) Notify(title, msg string) { d.note("notify: " + msg) }

func (d *fakeDialogs) Asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.asked...)
}
func (d *fakeDialogs) Errors() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.errors...)
}

// fakeDesktop records what the menu asked of the desktop.
type fakeDesktop struct {
	mu   sync.Mutex
	done []string
}

func (d *fakeDesktop) rec(s string) error {
	d.mu.Lock()
	d.done = append(d.done, s)
	d.mu.Unlock()
	return nil
}
func (d *fakeDesktop) OpenTerminal(cmd string) error { return d.rec("terminal: " + cmd) }
func (d *fakeDesktop) CopyText(s string) error       { return d.rec("copy: " + s) }
func (d *fakeDesktop) OpenText(p string) error       { return d.rec("open: " + p) }
func (d *fakeDesktop) OpenURL(u string) error        { return d.rec("browse: " + u) }
func (d *fakeDesktop) Done() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.done...)
}

type fakeLogin struct {
	mu sync.Mutex
	on bool
}

func (l *fakeLogin) Enabled() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.on }
func (l *fakeLogin) SetEnabled(on bool) error {
	l.mu.Lock()
	l.on = on
	l.mu.Unlock()
	return nil
}

// harness is a running menu over fakes.
type harness struct {
	tray    *fakeTray
	client  *fakeClient
	dialogs *fakeDialogs
	desktop *fakeDesktop
	login   *fakeLogin
	menu    *Menu
	quits   chan struct{}
}

func start(t *testing.T, opts Options, vms ...api.VM) *harness {
	t.Helper()
	h := &harness{tray: newFakeTray(), client: newFakeClient(vms...), dialogs: &fakeDialogs{},
		desktop: &fakeDesktop{}, login: &fakeLogin{}, quits: make(chan struct{}, 1)}
	opts.Client, opts.Dialogs, opts.Desktop, opts.Login = h.client, h.dialogs, h.desktop, h.login
	opts.Quit = func() { h.quits <- struct{}{} }
	if opts.SelfPID == 0 {
		opts.SelfPID = h.client.pid // this app is the host unless a test says otherwise
	}
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = 10*time.Millisecond, 40*time.Millisecond
	}
	if opts.Settle == 0 {
		opts.Settle = 20 * time.Millisecond
	}
	h.menu = New(h.tray, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.menu.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		h.menu.Wait()
	})
	return h
}

// eventually polls cond until it holds or a second passes — the menu's
// promise for reflecting a change.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within a second: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) waitTitle(t *testing.T, path ...string) snapshot {
	t.Helper()
	var s snapshot
	eventually(t, fmt.Sprintf("item %q shown", path), func() bool {
		var ok bool
		s, ok = h.tray.find(path...)
		return ok
	})
	return s
}
