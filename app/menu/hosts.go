package menu

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/fvmhq/fvm/core/remote"
)

// The menu shows one host's VMs at a time: this machine's, or a context's
// (`fvm context`), picked in the Host submenu. A remote host is reached over
// SSH and may be slow or unreachable: every call to it runs off the tray's
// thread with a time limit, and the status line says what is going on.

// HostChoice is one host the menu can show.
type HostChoice struct {
	Name   string // the context's name; remote.DefaultContext is this machine
	Label  string // as the submenu shows it
	Remote bool
}

// Hosts lists the hosts the user can pick and connects to them.
type Hosts interface {
	// Choices are this machine first, then the contexts, and the one to show
	// first (the current context).
	Choices() ([]HostChoice, string, error)
	// Connect returns a client of the named remote host; it need not dial
	// yet. (This machine's is Options.Client.)
	Connect(name string) (Client, error)
}

// TitleHostPrefix starts the Host submenu's title: "Host: this machine".
const TitleHostPrefix = "Host: "

// hostMenu is the Host submenu: a pool of entries, one per host.
type hostMenu struct {
	root    *view
	entries []*view
	names   []string // the host each entry shows, "" when hidden
}

func (m *Menu) buildHosts() {
	if m.opts.Hosts == nil {
		return
	}
	root := m.tray.AddItem(TitleHostPrefix+"this machine", "Which machine's VMs this menu shows (fvm context)")
	hm := &hostMenu{root: newView(root, TitleHostPrefix+"this machine")}
	hm.root.tooltip = "Which machine's VMs this menu shows (fvm context)"
	for i := 0; i < m.opts.HostPool; i++ {
		it := root.AddSubItem("", "")
		v := newView(it, "")
		v.show(false)
		hm.entries = append(hm.entries, v)
		hm.names = append(hm.names, "")
		it.OnClick(func() {
			m.mu.Lock()
			name := hm.names[i]
			m.mu.Unlock()
			if name != "" {
				m.run(func() { m.Pick(name) })
			}
		})
	}
	m.hosts = hm
}

// loadChoices reads the hosts to offer; m.mu must not be held.
func (m *Menu) loadChoices() {
	if m.opts.Hosts == nil {
		return
	}
	choices, cur, err := m.opts.Hosts.Choices()
	if err != nil {
		m.log.Warn("list contexts", "err", err)
		return
	}
	m.mu.Lock()
	m.choices, m.storeCur = choices, cur
	m.render()
	m.mu.Unlock()
}

// renderHosts draws the Host submenu; m.mu must be held.
func (m *Menu) renderHosts() {
	hm := m.hosts
	if hm == nil {
		return
	}
	hm.root.set(TitleHostPrefix+m.cur.Label, hm.root.tooltip, !m.quitting)
	for i, e := range hm.entries {
		if i >= len(m.choices) {
			hm.names[i] = ""
			e.show(false)
			continue
		}
		c := m.choices[i]
		hm.names[i] = c.Name
		mark := "   "
		if c.Name == m.cur.Name {
			mark = "✓ "
		}
		e.set(mark+c.Label, "", true)
		e.show(true)
	}
}

// Pick shows the named host's VMs: the menu connects to it and follows it.
func (m *Menu) Pick(name string) {
	var choice HostChoice
	m.mu.Lock()
	for _, c := range m.choices {
		if c.Name == name {
			choice = c
		}
	}
	same := name == m.cur.Name
	m.mu.Unlock()
	if choice.Name == "" {
		m.opts.Dialogs.Error("fvm: no such host", fmt.Sprintf("The context %s is gone: `fvm context ls` lists them.", name))
		return
	}
	if same {
		return
	}
	c := m.opts.Client // this machine's host
	if choice.Remote {
		var err error
		if c, err = m.opts.Hosts.Connect(name); err != nil {
			m.opts.Dialogs.Error("fvm: cannot use "+choice.Label, oneLine(err))
			return
		}
	}
	m.mu.Lock()
	m.cur, m.client = choice, c
	m.gen++
	m.vms, m.host, m.hostErr = nil, nil, nil
	if m.tunnel != nil { // the previous host's console: its pages go with it
		m.tunnel.cancel()
		m.tunnel = nil
	}
	cancel := m.cancelFollow
	m.render()
	m.mu.Unlock()
	if cancel != nil {
		cancel() // Run follows the new host at once
	}
	m.log.Info("showing another host", "host", name)
}

// c is the client of the host shown now.
func (m *Menu) c() Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.client
}

// hostTimeout bounds one call that connects to the host shown: a remote one
// may need an SSH handshake and to start its fvm host first.
func (m *Menu) hostTimeout() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur.Remote {
		return m.opts.RemoteTimeout
	}
	return 5 * time.Second
}

// contextArgs are the fvm CLI flags that reach the host shown.
func (m *Menu) contextArgs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur.Name == "" || m.cur.Name == remote.DefaultContext {
		if m.storeCur != "" && m.storeCur != remote.DefaultContext {
			return []string{"--context", remote.DefaultContext} // the CLI alone would go to storeCur
		}
		return nil
	}
	return []string{"--context", m.cur.Name}
}

// consoleTunnel is a listener on this machine's 127.0.0.1 carrying each
// connection to a remote host's web console, kept while that host is shown.
type consoleTunnel struct {
	port   int
	cancel context.CancelFunc
}

// localConsole turns a remote host's web console address into one on this
// machine, through a tunnel (made on first use).
func (m *Menu) localConsole(url string) (string, error) {
	m.mu.Lock()
	t, gen, c := m.tunnel, m.gen, m.client
	m.mu.Unlock()
	if t == nil {
		ln, err := remote.ListenLoopback(0)
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithCancel(context.Background())
		t = &consoleTunnel{port: ln.Addr().(*net.TCPAddr).Port, cancel: cancel}
		port := t.port
		go remote.Serve(ctx, ln, func(ctx context.Context) (net.Conn, error) {
			return c.DialConsole(ctx, port)
		}, func(err error) { m.log.Warn("console tunnel", "err", err) })
		m.mu.Lock()
		if m.gen != gen || m.tunnel != nil { // another host was picked meanwhile, or another click made one
			m.mu.Unlock()
			cancel()
			return m.localConsoleAgain(url, gen)
		}
		m.tunnel = t
		m.mu.Unlock()
	}
	return remote.LocalURL(url, t.port)
}

// localConsoleAgain uses the tunnel another click made, if it is for the
// same host.
func (m *Menu) localConsoleAgain(url string, gen int) (string, error) {
	m.mu.Lock()
	t, same := m.tunnel, m.gen == gen
	m.mu.Unlock()
	if !same || t == nil {
		return "", fmt.Errorf("another host was picked meanwhile")
	}
	return remote.LocalURL(url, t.port)
}
