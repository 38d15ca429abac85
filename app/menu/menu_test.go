package menu

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

func TestStateToItems(t *testing.T) {
	bad := mkVM("bad", vm.Error)
	bad.Error = "vm \"bad\": start: disk is missing\nmore detail"
	h := start(t, Options{}, mkVM("web", vm.Running), mkVM("db", vm.Stopped), mkVM("boot", vm.Starting), bad)

	status := h.waitTitle(t, "fvm host: this app (test) · 2 of 4 VMs running")
	if status.Enabled {
		t.Error("status line is clickable")
	}
	var names []string
	for _, s := range h.tray.visible() {
		names = append(names, s.Title)
	}
	want := []string{"● web", "○ db", "◐ boot", "⚠ bad"}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("no item %q in %q", w, names)
		}
	}
	// Sorted by name: bad, boot, db, web.
	if i, j := slices.Index(names, "⚠ bad"), slices.Index(names, "● web"); i > j {
		t.Errorf("VMs not sorted by name: %q", names)
	}

	enabled := func(vmTitle string) map[string]bool {
		s, _ := h.tray.find(vmTitle)
		out := map[string]bool{}
		for _, c := range s.Children[1:] {
			out[c.Title] = c.Enabled
		}
		return out
	}
	cases := map[string][]string{ // VM → its enabled actions
		"● web":  {"Stop", "Restart", "Open Display", "Open Console", "Open Terminal", "Copy SSH Command", "Show Logs", "Snapshot…", "Clone…", "Delete…"},
		"○ db":   {"Start", "Copy SSH Command", "Show Logs", "Snapshot…", "Clone…", "Delete…"},
		"◐ boot": {"Stop", "Open Display", "Open Console", "Copy SSH Command", "Show Logs"},
		"⚠ bad":  {"Start", "Copy SSH Command", "Show Logs", "Delete…"},
	}
	for title, on := range cases {
		got := enabled(title)
		if len(got) != int(numActions) {
			t.Fatalf("%s: %d actions, want %d: %v", title, len(got), numActions, got)
		}
		for a, e := range got {
			if e != slices.Contains(on, a) {
				t.Errorf("%s: %s enabled=%v", title, a, e)
			}
		}
	}
	info, _ := h.tray.find("⚠ bad")
	if got := info.Children[0].Title; got != `Error: vm "bad": start: disk is missing` || info.Children[0].Enabled {
		t.Errorf("error line = %q (enabled %v)", got, info.Children[0].Enabled)
	}
	info, _ = h.tray.find("● web")
	if got := info.Children[0].Title; got != "Running · debian-local · 2 CPU · 2G RAM" {
		t.Errorf("info line = %q", got)
	}
	for _, fixed := range []string{TitleNewVM, TitlePrefs, TitleLogin, TitleQuit} {
		if s, ok := h.tray.find(fixed); !ok || !s.Enabled {
			t.Errorf("%s missing or disabled", fixed)
		}
	}
}

func TestPoolOverflowAndEmpty(t *testing.T) {
	h := start(t, Options{PoolSize: 2}, mkVM("a", vm.Stopped), mkVM("b", vm.Stopped), mkVM("c", vm.Running))
	h.waitTitle(t, "1 more VMs: see `fvm ps`")
	if _, ok := h.tray.find("● c"); ok {
		t.Error("third VM shown in a pool of two")
	}

	h.client.mu.Lock()
	h.client.vms = map[string]api.VM{}
	h.client.mu.Unlock()
	h.client.events <- api.Event{Type: api.EventVMRemoved, VM: "a"}
	h.waitTitle(t, titleNoVMs)
	if _, ok := h.tray.find("○ a"); ok {
		t.Error("removed VM still shown")
	}
}

func TestClickCallsAPI(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.SerialLog), []byte("boot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	web := mkVM("web", vm.Running)
	web.Dir = dir
	web.Logs = []string{filepath.Join(dir, store.SerialLog), filepath.Join(dir, "qemu.log")} // the second is absent
	h := start(t, Options{FvmPath: "/opt/fvm bin/fvm", Env: []string{"FVM_HOME=/tmp/h"}, StopTimeout: 30 * time.Second},
		web, mkVM("db", vm.Stopped))
	h.waitTitle(t, "● web")

	h.tray.click(t, "○ db", "Start")
	h.tray.click(t, "● web", "Stop")
	h.tray.click(t, "● web", "Restart")
	h.tray.click(t, "● web", "Open Terminal")
	h.tray.click(t, "● web", "Copy SSH Command")
	h.tray.click(t, "● web", "Open Display")
	h.tray.click(t, "● web", "Open Console")
	h.tray.click(t, "● web", "Show Logs")
	h.menu.Wait()

	calls := h.client.Calls()
	slices.Sort(calls)
	want := []string{"display web serial=false", "display web serial=true", "restart web", "start db", "stop web force=false timeout=30"}
	if !slices.Equal(calls, want) {
		t.Errorf("API calls = %q, want %q", calls, want)
	}
	done := h.desktop.Done()
	slices.Sort(done)
	wantDone := []string{
		"browse: http://127.0.0.1:4711/vm/web/?token=t",
		"browse: http://127.0.0.1:4711/vm/web/?token=t#serial",
		"copy: FVM_HOME=/tmp/h fvm ssh web",
		"open: " + filepath.Join(dir, store.SerialLog),
		"terminal: FVM_HOME=/tmp/h '/opt/fvm bin/fvm' ssh web",
	}
	if !slices.Equal(done, wantDone) {
		t.Errorf("desktop actions =\n%q\nwant\n%q", done, wantDone)
	}
	if e := h.dialogs.Errors(); len(e) != 0 {
		t.Errorf("error dialogs: %q", e)
	}
}

// On macOS the app shows web consoles in windows of its own and the serial
// console in Terminal; a VM with a native window is shown by the host itself.
func TestOpenDisplayWindowsAndNative(t *testing.T) {
	var mu sync.Mutex
	var windows []string
	yields := 0
	h := start(t, Options{FvmPath: "fvm", ConsoleInTerminal: true, OpenWindow: func(name, url string) error {
		mu.Lock()
		windows = append(windows, name+" "+url)
		mu.Unlock()
		return nil
	}, BeforeDisplay: func() { mu.Lock(); yields++; mu.Unlock() }}, mkVM("web", vm.Running))
	h.waitTitle(t, "● web")
	h.tray.click(t, "● web", "Open Display")
	h.tray.click(t, "● web", "Open Console")
	h.menu.Wait()
	mu.Lock()
	if want := []string{"web http://127.0.0.1:4711/vm/web/?token=t"}; !slices.Equal(windows, want) {
		t.Errorf("windows = %q, want %q", windows, want)
	}
	mu.Unlock()
	if done, want := h.desktop.Done(), []string{"terminal: fvm console web"}; !slices.Equal(done, want) {
		t.Errorf("desktop actions = %q, want %q", done, want)
	}

	h.client.mu.Lock()
	h.client.native = true
	h.client.mu.Unlock()
	h.tray.click(t, "● web", "Open Display")
	h.menu.Wait()
	mu.Lock()
	if len(windows) != 1 {
		t.Errorf("a natively shown VM opened a window: %q", windows)
	}
	// Activation is yielded (to the vz helper) before each Open Display, not for the console.
	if yields != 2 {
		t.Errorf("BeforeDisplay ran %d times for two Open Display clicks, want 2", yields)
	}
	mu.Unlock()
	if e := h.dialogs.Errors(); len(e) != 0 {
		t.Errorf("error dialogs: %q", e)
	}
}

func TestClickFailureShowsError(t *testing.T) {
	h := start(t, Options{}, mkVM("db", vm.Stopped))
	h.client.startErr = &api.Error{Code: api.CodeConflict, Msg: `vm "db" is busy stopping: try again when that is done`}
	h.waitTitle(t, "○ db")
	h.tray.click(t, "○ db", "Start")
	h.menu.Wait()
	want := []string{`fvm: could not start db: vm "db" is busy stopping: try again when that is done`}
	if got := h.dialogs.Errors(); !slices.Equal(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
}

func TestDeleteConfirmation(t *testing.T) {
	h := start(t, Options{}, mkVM("db", vm.Stopped), mkVM("web", vm.Running))
	h.waitTitle(t, "○ db")

	h.dialogs.confirm = false
	h.tray.click(t, "○ db", "Delete…")
	h.menu.Wait()
	if c := h.client.Calls(); len(c) != 0 {
		t.Fatalf("declined delete called the API: %q", c)
	}
	if a := h.dialogs.Asked(); len(a) != 1 || !strings.Contains(a[0], "Delete the VM db") {
		t.Fatalf("dialogs asked %q", a)
	}

	h.dialogs.confirm = true
	h.tray.click(t, "○ db", "Delete…")
	h.tray.click(t, "● web", "Delete…")
	h.menu.Wait()
	calls := h.client.Calls()
	slices.Sort(calls)
	if want := []string{"remove db force=false", "remove web force=true"}; !slices.Equal(calls, want) {
		t.Errorf("calls = %q, want %q", calls, want)
	}
	if a := h.dialogs.Asked(); !strings.Contains(strings.Join(a, "\n"), "It is running: it will be stopped first.") {
		t.Errorf("running VM's confirmation does not say it stops it: %q", a)
	}
}

func TestEventRefreshesWithinASecond(t *testing.T) {
	h := start(t, Options{}, mkVM("web", vm.Stopped))
	h.waitTitle(t, "○ web")
	time.Sleep(50 * time.Millisecond) // let the settle listing pass
	lists := h.client.listCount()
	time.Sleep(300 * time.Millisecond)
	if n := h.client.listCount(); n != lists {
		t.Fatalf("the menu listed VMs %d times without any event: it must not poll", n-lists)
	}

	// A change made from the CLI: the host publishes it, the menu shows it.
	h.client.set(mkVM("web", vm.Running))
	h.client.events <- api.Event{Type: api.EventVMState, VM: "web", State: vm.Running}
	h.waitTitle(t, "● web")
	h.client.set(mkVM("new1", vm.Starting))
	h.client.events <- api.Event{Type: api.EventVMCreated, VM: "new1"}
	h.waitTitle(t, "◐ new1")

	// Progress events are not VM changes.
	lists = h.client.listCount()
	for range 5 {
		h.client.events <- api.Event{Type: api.EventProgress, Done: 1}
	}
	time.Sleep(100 * time.Millisecond)
	if n := h.client.listCount(); n != lists {
		t.Errorf("progress events caused %d listings", n-lists)
	}
}

func TestReconnectsWithBackoff(t *testing.T) {
	h := start(t, Options{}, mkVM("web", vm.Running))
	h.waitTitle(t, "● web")

	// The host goes away: the stream drops and the host does not answer.
	h.client.mu.Lock()
	h.client.hostErr = &net503{}
	close(h.client.drop)
	h.client.drop = make(chan struct{})
	h.client.mu.Unlock()
	h.waitTitle(t, "fvm host not reachable: retrying…")
	if _, ok := h.tray.find("● web"); ok {
		t.Error("VMs still shown while the host is unreachable")
	}
	if s, _ := h.tray.find(TitleNewVM); s.Enabled {
		t.Error("New VM enabled while the host is unreachable")
	}
	streams := h.client.streamCount()

	// A new host (another pid) comes up with a changed VM.
	h.client.mu.Lock()
	h.client.hostErr = nil
	h.client.pid = 777
	h.client.mu.Unlock()
	h.client.set(mkVM("web", vm.Stopped))
	h.waitTitle(t, "fvm host pid 777 (test) · 0 of 1 VMs running")
	h.waitTitle(t, "○ web")
	if h.client.streamCount() != streams+1 {
		t.Errorf("streams = %d, want %d", h.client.streamCount(), streams+1)
	}
}

type net503 struct{}

func (*net503) Error() string { return "connection refused" }

func TestQuit(t *testing.T) {
	t.Run("no running VMs: no question", func(t *testing.T) {
		h := start(t, Options{}, mkVM("db", vm.Stopped))
		h.waitTitle(t, "○ db")
		h.tray.click(t, TitleQuit)
		<-h.quits
		if a := h.dialogs.Asked(); len(a) != 0 {
			t.Errorf("asked %q", a)
		}
	})
	t.Run("another host runs the VMs: no question", func(t *testing.T) {
		h := start(t, Options{SelfPID: 1}, mkVM("web", vm.Running))
		h.waitTitle(t, "● web")
		h.tray.click(t, TitleQuit)
		<-h.quits
		if a := h.dialogs.Asked(); len(a) != 0 {
			t.Errorf("asked %q", a)
		}
	})
	for _, tc := range []struct {
		choice int
		quits  bool
		calls  []string
	}{
		{QuitCancel, false, nil},
		{QuitLeaveRunning, true, nil},
		{QuitStopVMs, true, []string{"stop boot force=false timeout=60", "stop web force=false timeout=60"}},
		{QuitSuspendVMs, true, []string{"stop boot force=false timeout=60 save", "stop web force=false timeout=60 save"}},
	} {
		t.Run(QuitChoices[tc.choice], func(t *testing.T) {
			h := start(t, Options{}, mkVM("web", vm.Running), mkVM("boot", vm.Starting), mkVM("db", vm.Stopped))
			h.waitTitle(t, "● web")
			h.dialogs.picks = []string{QuitChoices[tc.choice]}
			if tc.choice == QuitCancel {
				h.dialogs.picks = []string{""}
			}
			h.tray.click(t, TitleQuit)
			h.menu.Wait()
			select {
			case <-h.quits:
				if !tc.quits {
					t.Error("quit after Cancel")
				}
			default:
				if tc.quits {
					t.Error("did not quit")
				}
			}
			if a := h.dialogs.Asked(); len(a) != 1 || !strings.Contains(a[0], "2 VMs are running (boot, web)") {
				t.Errorf("asked %q", a)
			}
			calls := h.client.Calls()
			slices.Sort(calls)
			if !slices.Equal(calls, tc.calls) {
				t.Errorf("calls = %q, want %q", calls, tc.calls)
			}
		})
	}
}

func TestNewVM(t *testing.T) {
	h := start(t, Options{})
	h.waitTitle(t, titleNoVMs)

	h.tray.click(t, TitleNewVM)
	h.menu.Wait()
	if e := h.dialogs.Errors(); len(e) != 1 || !strings.Contains(e[0], "fvm image build debian") {
		t.Fatalf("no-image error = %q", e)
	}

	h.client.images = []api.Image{{Name: "debian-local", Arch: vm.AMD64, Version: "12"}, {Name: "alpine", Arch: vm.ARM64}}
	h.dialogs.picks = []string{""} // cancel at the image
	h.tray.click(t, TitleNewVM)
	h.menu.Wait()
	if c := h.client.Calls(); len(c) != 0 {
		t.Fatalf("cancelled New VM called %q", c)
	}

	h.dialogs.picks = []string{"debian-local (amd64, 12)", Sizes[2].Label()}
	h.dialogs.entry = " web2 "
	h.tray.click(t, TitleNewVM)
	h.menu.Wait()
	if len(h.client.created) != 1 {
		t.Fatalf("created %v", h.client.created)
	}
	got := h.client.created[0]
	want := api.CreateRequest{Start: true, Spec: vm.Spec{Name: "web2", Image: "debian-local", Arch: vm.AMD64, CPUs: 4, MemoryMiB: 8192, DiskBytes: 50 << 30}}
	if got.Start != want.Start || got.Spec.Name != want.Spec.Name || got.Spec.Image != want.Spec.Image ||
		got.Spec.Arch != want.Spec.Arch || got.Spec.CPUs != 4 || got.Spec.MemoryMiB != 8192 || got.Spec.DiskBytes != 50<<30 {
		t.Errorf("create = %+v, want %+v", got, want)
	}
	if Sizes[1].Label() != "Medium: 2 CPUs, 2G memory, 20G disk" {
		t.Errorf("label %q", Sizes[1].Label())
	}

	h.dialogs.picks = []string{"alpine (arm64)", Sizes[0].Label()}
	h.dialogs.entry = "Bad_Name"
	h.tray.click(t, TitleNewVM)
	h.menu.Wait()
	if e := h.dialogs.Errors(); len(e) != 2 || !strings.Contains(e[1], "invalid") {
		t.Errorf("bad name error = %q", e)
	}
}

func TestPreferences(t *testing.T) {
	home := t.TempDir()
	layout := store.Layout{ConfigDir: filepath.Join(home, "cfg")}
	h := start(t, Options{ConfigFile: layout.ConfigFile()})
	h.tray.click(t, TitlePrefs)
	h.menu.Wait()
	if d := h.desktop.Done(); !slices.Equal(d, []string{"open: " + layout.ConfigFile()}) {
		t.Errorf("desktop = %q", d)
	}
	b, err := os.ReadFile(layout.ConfigFile())
	if err != nil || !strings.Contains(string(b), "# backend: auto      # auto") {
		t.Fatalf("config file = %q, %v", b, err)
	}
	// All commented out: fvm reads it as the defaults.
	v, err := config.Load(layout)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := config.VMSettings(v, nil); err != nil || got != vm.Defaults {
		t.Errorf("the commented-out file changed the defaults: %+v %v", got, err)
	}
	// A user's file is never overwritten.
	if err := os.WriteFile(layout.ConfigFile(), []byte("cpus: 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := EnsureConfig(layout.ConfigFile(), []string{"qemu"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(layout.ConfigFile()); string(b) != "cpus: 4\n" {
		t.Errorf("user's config overwritten: %q", b)
	}
}

func TestStartAtLogin(t *testing.T) {
	h := start(t, Options{})
	if s, _ := h.tray.find(TitleLogin); s.Checked {
		t.Fatal("checked while off")
	}
	h.tray.click(t, TitleLogin)
	h.menu.Wait()
	if s, _ := h.tray.find(TitleLogin); !s.Checked || !h.login.Enabled() {
		t.Fatalf("after click: checked %v enabled %v", s.Checked, h.login.Enabled())
	}
	h.tray.click(t, TitleLogin)
	h.menu.Wait()
	if s, _ := h.tray.find(TitleLogin); s.Checked || h.login.Enabled() {
		t.Fatalf("after second click: checked %v enabled %v", s.Checked, h.login.Enabled())
	}
}

func TestRefreshTouchesOnlyChanges(t *testing.T) {
	h := start(t, Options{}, mkVM("web", vm.Running))
	h.waitTitle(t, "● web")
	time.Sleep(50 * time.Millisecond)
	h.tray.mu.Lock()
	before := h.tray.calls
	h.tray.mu.Unlock()
	h.menu.Refresh()
	h.client.events <- api.Event{Type: api.EventVMState, VM: "web", State: vm.Running}
	time.Sleep(100 * time.Millisecond)
	h.tray.mu.Lock()
	after := h.tray.calls
	h.tray.mu.Unlock()
	if after != before {
		t.Errorf("an unchanged listing made %d tray calls", after-before)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"web1":          "web1",
		"/usr/bin/fvm":  "/usr/bin/fvm",
		"/a b/fvm":      "'/a b/fvm'",
		"it's":          `'it'\''s'`,
		"":              "''",
		"$(rm -rf ~)":   "'$(rm -rf ~)'",
		"FVM_HOME=/x/y": "FVM_HOME=/x/y",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := commandLine([]string{"FVM_HOME=/a b"}, []string{"fvm", "ssh", "x"}); got != "FVM_HOME='/a b' fvm ssh x" {
		t.Errorf("commandLine = %s", got)
	}
}
