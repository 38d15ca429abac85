package menu

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

// fakeHosts offers this machine and a context "lab" with clients of their own.
type fakeHosts struct {
	mu      sync.Mutex
	clients map[string]*fakeClient
	current string
}

func (f *fakeHosts) Choices() ([]HostChoice, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []HostChoice{{Name: "default", Label: "this machine"}}
	for _, n := range []string{"lab", "gone"} {
		if f.clients[n] != nil {
			out = append(out, HostChoice{Name: n, Label: n + " (ssh://me@" + n + ")", Remote: true})
		}
	}
	return out, f.current, nil
}

func (f *fakeHosts) Connect(name string) (Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.clients[name]
	if c == nil {
		return nil, fmt.Errorf("context %q does not exist", name)
	}
	return c, nil
}

func startHosts(t *testing.T, lab *fakeClient, local ...string) (*harness, *fakeHosts) {
	t.Helper()
	hosts := &fakeHosts{clients: map[string]*fakeClient{"lab": lab}, current: "default"}
	h := start(t, Options{Hosts: hosts, RemoteTimeout: 200 * time.Millisecond}, mkVM("here1", vm.Running))
	return h, hosts
}

func TestHostSubmenuSwitchesBetweenMachines(t *testing.T) {
	lab := newFakeClient(mkVM("far1", vm.Running), mkVM("far2", vm.Stopped))
	lab.pid, lab.hostName = 7, "labbox"
	h, _ := startHosts(t, lab)
	h.waitTitle(t, "● here1")
	hm := h.waitTitle(t, TitleHostPrefix+"this machine")
	if len(hm.Children) != 2 || hm.Children[0].Title != "✓ this machine" || !strings.HasPrefix(hm.Children[1].Title, "   lab") {
		t.Fatalf("host submenu: %+v", hm.Children)
	}

	h.tray.click(t, TitleHostPrefix+"this machine", "   lab*")
	h.waitTitle(t, "● far1")
	h.waitTitle(t, "○ far2")
	if _, ok := h.tray.find("● here1"); ok {
		t.Fatal("this machine's VM still shown with lab picked")
	}
	h.waitTitle(t, "lab (ssh://me@lab): fvm host on labbox*")
	h.waitTitle(t, TitleHostPrefix+"lab (ssh://me@lab)", "✓ lab*")

	// Commands for the user reach the host shown.
	h.tray.click(t, "● far1", ActionTitles[ActTerminal])
	h.tray.click(t, "● far1", ActionTitles[ActCopySSH])
	h.tray.click(t, "● far1", ActionTitles[ActStop])
	h.menu.Wait()
	done := strings.Join(h.desktop.Done(), "\n")
	if !strings.Contains(done, "terminal: fvm --context lab ssh far1") || !strings.Contains(done, "copy: fvm --context lab ssh far1") {
		t.Fatalf("desktop actions: %s", done)
	}
	if calls := strings.Join(lab.Calls(), ","); !strings.Contains(calls, "stop far1") {
		t.Fatalf("lab calls: %s", calls)
	}
	if calls := strings.Join(h.client.Calls(), ","); strings.Contains(calls, "far1") {
		t.Fatalf("this machine's host got lab's calls: %s", calls)
	}

	h.tray.click(t, TitleHostPrefix+"lab*", "   this machine")
	h.waitTitle(t, "● here1")
	if _, ok := h.tray.find("● far1"); ok {
		t.Fatal("lab's VM still shown with this machine picked")
	}
}

// An unreachable context says so and never holds the menu: the user can
// go back at once.
func TestUnreachableHostNeverHangsTheMenu(t *testing.T) {
	lab := newFakeClient(mkVM("far1", vm.Running))
	lab.block = true
	h, _ := startHosts(t, lab)
	h.waitTitle(t, "● here1")
	h.tray.click(t, TitleHostPrefix+"this machine", "   lab*")
	h.waitTitle(t, "fvm: connecting to lab*")
	h.waitTitle(t, "lab (ssh://me@lab): not reachable: context deadline exceeded*")
	t0 := time.Now()
	h.tray.click(t, TitleHostPrefix+"lab*", "   this machine")
	h.waitTitle(t, "● here1")
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Fatalf("going back took %s", d)
	}

	lab.mu.Lock()
	lab.block, lab.hostErr = false, fmt.Errorf("the SSH host key of me@lab is not known: fvm never accepts an unknown key")
	lab.mu.Unlock()
	h.tray.click(t, TitleHostPrefix+"this machine", "   lab*")
	s := h.waitTitle(t, "lab (ssh://me@lab): not reachable: the SSH host key*")
	if s.Enabled {
		t.Fatal("the status line is clickable")
	}
	if _, ok := h.tray.find("● here1"); ok {
		t.Fatal("this machine's VMs shown while lab is picked")
	}
}

// Open Display of a remote VM opens a local address tunnelled to that host's
// web console, which is told the local port.
func TestRemoteDisplayIsTunnelled(t *testing.T) {
	lab := newFakeClient(mkVM("far1", vm.Running))
	h, _ := startHosts(t, lab)
	h.tray.click(t, TitleHostPrefix+"this machine", "   lab*")
	h.waitTitle(t, "● far1")
	h.tray.click(t, "● far1", ActionTitles[ActDisplay])
	h.menu.Wait()
	var url string
	for _, d := range h.desktop.Done() {
		if u, ok := strings.CutPrefix(d, "browse: "); ok {
			url = u
		}
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.Contains(url, ":4711/") || !strings.HasSuffix(url, "/vm/far1/?token=t") {
		t.Fatalf("opened %q, want this machine's tunnel to the console page", url)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	port := strings.TrimPrefix(strings.SplitN(strings.TrimPrefix(url, "http://"), "/", 2)[0], "127.0.0.1:")
	if string(b) != "console 127.0.0.1:"+port+" /vm/far1/" {
		t.Fatalf("through the tunnel: %q", b)
	}
	lab.mu.Lock()
	got := lab.consoles
	lab.mu.Unlock()
	if len(got) != 1 || fmt.Sprint(got[0]) != port {
		t.Fatalf("DialConsole ports %v, want [%s]", got, port)
	}
}

// The menu starts on the context `fvm context use` picked; commands for this
// machine then name it, or the CLI would go to that context.
func TestStartsOnTheCurrentContext(t *testing.T) {
	lab := newFakeClient(mkVM("far1", vm.Running))
	hosts := &fakeHosts{clients: map[string]*fakeClient{"lab": lab}, current: "lab"}
	h := start(t, Options{Hosts: hosts, RemoteTimeout: 200 * time.Millisecond}, mkVM("here1", vm.Running))
	h.waitTitle(t, "● far1")
	h.tray.click(t, TitleHostPrefix+"lab*", "   this machine")
	h.waitTitle(t, "● here1")
	h.tray.click(t, "● here1", ActionTitles[ActTerminal])
	h.menu.Wait()
	if done := strings.Join(h.desktop.Done(), "\n"); !strings.Contains(done, "terminal: fvm --context default ssh here1") {
		t.Fatalf("desktop actions: %s", done)
	}
}
