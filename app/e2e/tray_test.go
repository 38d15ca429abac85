// Package e2e drives the tray app end to end: it runs bin/fvm-app under Xvfb
// with its own session bus and clicks its menu over D-Bus as a panel would.
//
//	FVM_APP_E2E=1 go test -v ./app/e2e/
//
// Without FVM_APP_E2E_VM it makes a VM whose start fails at once (no disk), so
// no guest boots: the test then proves the click reached the host. With
// FVM_APP_E2E_HOME=<fvm home> FVM_APP_E2E_VM=<vm> it starts and stops that
// real VM from the menu. FVM_APP_BIN skips building the app.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/remote"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

func TestTrayMenuOverDBus(t *testing.T) {
	if os.Getenv("FVM_APP_E2E") != "1" {
		t.Skip("set FVM_APP_E2E=1 to run the tray app under Xvfb and click its D-Bus menu (needs xvfb-run, dbus-run-session, cgo and libayatana-appindicator3-dev)")
	}
	for _, tool := range []string{"xvfb-run", "dbus-run-session"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install xvfb xauth dbus", tool)
		}
	}
	home, vmName := os.Getenv("FVM_APP_E2E_HOME"), os.Getenv("FVM_APP_E2E_VM")
	image := os.Getenv("FVM_APP_E2E_IMAGE") // create a real VM from this local image
	if image != "" && vmName == "" {
		vmName = "trayvm"
	}
	realVM := vmName != ""
	if realVM && home == "" {
		t.Fatal("FVM_APP_E2E_VM needs FVM_APP_E2E_HOME, the FVM_HOME that holds that VM")
	}
	if home == "" {
		var err error
		home, err = os.MkdirTemp("", "fa") // short: socket paths have a length limit
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(home) })
	}
	t.Setenv("FVM_HOME", home)
	layout := store.DefaultLayout()
	if !realVM {
		vmName = "e2e-nodisk"
		arch, _ := vm.ParseArch(runtime.GOARCH)
		st := store.New(layout)
		inst, err := st.Create(vm.Spec{Name: vmName, Image: "none", BaseImage: "/nonexistent.qcow2", Arch: arch,
			CPUs: 1, MemoryMiB: 256, DiskBytes: 1 << 30, User: vm.Defaults.User, Backend: "qemu", Accel: "tcg"})
		if err == nil {
			err = st.Commit(inst)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	// A context whose server refuses connections: the Host submenu lists it.
	// Removed at the end: a kept home (FVM_E2E_HOME) runs this test again.
	contexts := remote.Contexts{Dir: layout.ConfigDir}
	contexts.Remove("far", true) // left by a run that was killed
	if err := contexts.Create(remote.Context{Name: "far", Host: "ssh://nobody@127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { contexts.Remove("far", true) })

	// A stub browser records the pages the app opens (Open Display, Open Console).
	browsed := filepath.Join(t.TempDir(), "browsed")
	stub := filepath.Join(t.TempDir(), "browser")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nprintf '%s\\n' \"$1\" >> "+browsed+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	app := startApp(t, appBinary(t), home, "BROWSER="+stub)
	c := client.New(layout.SocketPath())
	info := waitHost(t, c, app)
	t.Logf("host pid %d answers on %s", info.PID, layout.SocketPath())
	if image != "" {
		spec := vm.Spec{Name: vmName, Image: image, MemoryMiB: 1024}
		if _, err := c.Create(context.Background(), api.CreateRequest{Spec: spec}); err != nil {
			t.Fatalf("create %s from %s: %v", vmName, image, err)
		}
		t.Cleanup(func() {
			if pid := readPID(layout, vmName); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			store.New(layout).Remove(vmName)
		})
	}

	// Follow the host's events: they show what the clicks did.
	events := watchEvents(t, c, vmName)

	conn, err := dbus.Connect(app.busAddress(t))
	if err != nil {
		t.Fatalf("session bus: %v", err)
	}
	defer conn.Close()
	var menu *dbusMenu
	waitFor(t, 10*time.Second, "the tray's D-Bus menu", func() bool {
		menu, err = findMenu(conn)
		return err == nil
	})

	root := waitMenu(t, menu, "the host status line", func(r *menuNode) bool {
		return r.find("fvm host: this app*") != nil && r.find("*"+vmName) != nil
	})
	t.Logf("menu:\n%s", root)
	checkContexts(t, menu, vmName)

	clickItem(t, menu, vmName, "Start")
	qemuPID := 0
	if realVM {
		events.wait(t, 3*time.Minute, vm.Running)
		waitMenu(t, menu, "● "+vmName, func(r *menuNode) bool { return r.find("● "+vmName) != nil })
		checkOpenDisplay(t, menu, vmName, browsed)
		clickItem(t, menu, vmName, "Stop")
		events.wait(t, 3*time.Minute, vm.Stopped)
		waitMenu(t, menu, "○ "+vmName, func(r *menuNode) bool { return r.find("○ "+vmName) != nil })
		// Start it once more to see it outlive the app below.
		v, err := c.Start(context.Background(), vmName)
		if err != nil || v.PID == 0 {
			t.Fatalf("start %s again: pid %d, %v", vmName, v.PID, err)
		}
		qemuPID = v.PID
	} else {
		// The click reached the host: it tried to start the VM, which failed
		// at once, and the menu shows the failure.
		events.wait(t, 30*time.Second, vm.Starting)
		events.wait(t, 30*time.Second, vm.Error)
		r := waitMenu(t, menu, "⚠ "+vmName, func(r *menuNode) bool {
			s := r.find("⚠ "+vmName, "Start")
			return s != nil && s.Enabled
		})
		if stop := r.find("⚠ "+vmName, "Stop"); stop == nil || stop.Enabled {
			t.Errorf("Stop of a failed VM: %+v, want disabled", stop)
		}
		t.Logf("menu after the failed start:\n%s", r)

		// A change from the CLI (`fvm rm` is this call) shows within a second.
		if err := c.Remove(context.Background(), vmName, false); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		waitMenu(t, menu, "the VM gone", func(r *menuNode) bool { return r.find("*"+vmName) == nil })
		if d := time.Since(t0); d > time.Second {
			t.Errorf("the menu took %s to show a removal, want under a second", d)
		} else {
			t.Logf("the menu showed the removal %s after it", d.Round(time.Millisecond))
		}
	}

	// SIGTERM: the app stops serving and exits 0, leaving VMs running.
	if err := syscall.Kill(info.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := app.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0\n%s", code, app.output())
	}
	if _, err := c.Ping(context.Background(), time.Second); err == nil {
		t.Error("the socket still answers after the app quit")
	}
	if qemuPID != 0 {
		if err := syscall.Kill(qemuPID, 0); err != nil {
			t.Errorf("the VM's hypervisor (pid %d) did not outlive the app: %v", qemuPID, err)
		} else {
			t.Logf("%s's hypervisor (pid %d) outlived the app, as it should; stopping it", vmName, qemuPID)
			syscall.Kill(qemuPID, syscall.SIGTERM)
		}
	}
	if bad := badLines(app.output()); len(bad) > 0 {
		t.Errorf("errors in the app's output:\n%s", strings.Join(bad, "\n"))
	}
}

// checkOpenDisplay clicks Open Display and Open Console: the app opens the
// host's web console (screen, then serial tab) in the browser, and the page
// it was given opens.
func checkOpenDisplay(t *testing.T, menu *dbusMenu, vmName, browsed string) {
	t.Helper()
	clickItem(t, menu, vmName, "Open Display")
	clickItem(t, menu, vmName, "Open Console")
	var urls []string
	waitFor(t, 15*time.Second, "the browser to be opened twice", func() bool {
		b, _ := os.ReadFile(browsed)
		urls = strings.Fields(string(b))
		return len(urls) >= 2
	})
	screen, serial := urls[0], urls[1] // the clicks run side by side
	if strings.HasSuffix(screen, "#serial") {
		screen, serial = serial, screen
	}
	page := "/vm/" + vmName + "/?code="
	if !strings.HasPrefix(screen, "http://127.0.0.1:") || !strings.Contains(screen, page) || !strings.Contains(serial, page) ||
		!strings.HasSuffix(serial, "#serial") || strings.HasSuffix(screen, "#serial") {
		t.Fatalf("opened %q, want the VM's console page and its serial tab, each with a one-time code", urls)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := hc.Get(screen)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/assets/console.js") {
		t.Fatalf("the page the app opened: %s %.200q", resp.Status, body)
	}
	t.Logf("Open Display opened %s, which serves the console page", strings.SplitN(screen, "?", 2)[0])
}

// checkContexts: the Host submenu lists this machine and the contexts;
// picking an unreachable one says why on the status line, without holding the
// menu, and picking this machine again shows its VMs.
func checkContexts(t *testing.T, menu *dbusMenu, vmName string) {
	t.Helper()
	const far = "*far (nobody@127.0.0.1:1)"
	waitMenu(t, menu, "the Host submenu", func(r *menuNode) bool {
		return r.find("Host: this machine", "✓ this machine") != nil && r.find("Host: this machine", far) != nil
	})
	clickPath(t, menu, "Host: this machine", far)
	r := waitMenu(t, menu, "far unreachable, and why", func(r *menuNode) bool {
		return r.find("far (nobody@127.0.0.1:1): not reachable: cannot reach nobody@127.0.0.1:1 over SSH*") != nil &&
			r.find("*"+vmName) == nil && r.find("Host: far*", "✓ far*") != nil
	})
	t.Logf("menu with the unreachable context picked:\n%s", r)
	t0 := time.Now()
	clickPath(t, menu, "Host: far*", "*this machine")
	waitMenu(t, menu, "this machine's VMs again", func(r *menuNode) bool {
		return r.find("fvm host: this app*") != nil && r.find("*"+vmName) != nil
	})
	t.Logf("back on this machine %s after the click", time.Since(t0).Round(time.Millisecond))
}

// clickPath clicks the entry at a path of labels once it is there.
func clickPath(t *testing.T, m *dbusMenu, path ...string) {
	t.Helper()
	r := waitMenu(t, m, strings.Join(path, " › "), func(r *menuNode) bool { return r.find(path...) != nil })
	n := r.find(path...)
	t.Logf("clicking %s (dbusmenu id %d)", strings.Join(path, " › "), n.ID)
	if err := m.click(n.ID); err != nil {
		t.Fatalf("click %v: %v", path, err)
	}
}

// badLines picks out what should never be in the app's output: toolkit
// criticals and warnings, panics and errors (a VM's expected start failure
// is an event and a dialog, not a log error).
func badLines(out string) []string {
	re := regexp.MustCompile(`(?i)(critical|gtk-warning|glib-warning|panic|level=ERROR|segmentation)`)
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if re.MatchString(l) {
			bad = append(bad, l)
		}
	}
	return bad
}

func readPID(l store.Layout, name string) int {
	b, _ := os.ReadFile(filepath.Join(l.InstanceDir(name), qemu.PIDFile))
	var pid int
	fmt.Sscan(string(b), &pid)
	return pid
}

func appBinary(t *testing.T) string {
	if p := os.Getenv("FVM_APP_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "fvm-app")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/fvmhq/fvm/app/cmd/fvm-app")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fvm-app: %v\n%s", err, out)
	}
	return bin
}

// runningApp is fvm-app under dbus-run-session and xvfb-run.
type runningApp struct {
	cmd      *exec.Cmd
	addrFile string
	mu       sync.Mutex
	out      bytes.Buffer
	done     chan struct{}
	exitCode int
}

func (a *runningApp) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.Write(p)
}

func (a *runningApp) output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.String()
}

func startApp(t *testing.T, bin, home string, env ...string) *runningApp {
	a := &runningApp{addrFile: filepath.Join(t.TempDir(), "bus"), done: make(chan struct{})}
	// The shell tells us the private bus's address, then becomes xvfb-run.
	a.cmd = exec.Command("dbus-run-session", "--", "sh", "-c",
		`printf %s "$DBUS_SESSION_BUS_ADDRESS" > "$1.tmp" && mv "$1.tmp" "$1" && exec xvfb-run -a "$2"`, "sh", a.addrFile, bin)
	// NO_AT_BRIDGE: GTK would start accessibility daemons that outlive the bus.
	a.cmd.Env = append(append(os.Environ(), "FVM_HOME="+home, "NO_AT_BRIDGE=1"), env...)
	a.cmd.Stdout, a.cmd.Stderr = a, a
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.cmd.Wait()
		a.exitCode = a.cmd.ProcessState.ExitCode()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default: // a failed test: take the whole group down (Xvfb, the bus, the app)
			syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-a.done:
			case <-time.After(10 * time.Second):
				syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
				<-a.done
			}
		}
		if t.Failed() {
			t.Logf("app output:\n%s", a.output())
		}
	})
	return a
}

func (a *runningApp) busAddress(t *testing.T) string {
	var addr []byte
	waitFor(t, 10*time.Second, "the session bus address", func() bool {
		addr, _ = os.ReadFile(a.addrFile)
		return len(addr) > 0
	})
	return string(addr)
}

func (a *runningApp) wait(t *testing.T, d time.Duration) int {
	select {
	case <-a.done:
		return a.exitCode
	case <-time.After(d):
		t.Fatalf("the app did not exit within %s", d)
		return -1
	}
}

func waitHost(t *testing.T, c *client.Client, a *runningApp) api.HostInfo {
	var info api.HostInfo
	var err error
	waitFor(t, 20*time.Second, "the host socket", func() bool {
		select {
		case <-a.done:
			t.Fatalf("the app exited early (status %d):\n%s", a.exitCode, a.output())
		default:
		}
		info, err = c.Ping(context.Background(), time.Second)
		return err == nil
	})
	return info
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMenu waits until the menu's layout satisfies cond and returns it.
func waitMenu(t *testing.T, m *dbusMenu, what string, cond func(*menuNode) bool) *menuNode {
	t.Helper()
	var root *menuNode
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		root, err = m.layout()
		if err == nil && cond(root) {
			return root
		}
		if time.Now().After(deadline) {
			t.Fatalf("the menu does not show %s (err %v):\n%s", what, err, root)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clickItem clicks an entry of a VM's submenu once it is enabled.
func clickItem(t *testing.T, m *dbusMenu, vmName, item string) {
	t.Helper()
	r := waitMenu(t, m, item+" enabled for "+vmName, func(r *menuNode) bool {
		n := r.find("*"+vmName, item)
		return n != nil && n.Enabled
	})
	n := r.find("*"+vmName, item)
	t.Logf("clicking %s › %s (dbusmenu id %d)", vmName, item, n.ID)
	if err := m.click(n.ID); err != nil {
		t.Fatalf("click %s: %v", item, err)
	}
}

// vmEvents collects one VM's state changes from the host's event stream.
type vmEvents struct {
	mu     sync.Mutex
	states []vm.State
}

func watchEvents(t *testing.T, c *client.Client, name string) *vmEvents {
	ev := &vmEvents{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Events(ctx, func(e api.Event) {
		if e.VM == name && e.State != "" {
			ev.mu.Lock()
			ev.states = append(ev.states, e.State)
			ev.mu.Unlock()
		}
	})
	time.Sleep(200 * time.Millisecond) // let the subscription take effect
	return ev
}

func (e *vmEvents) wait(t *testing.T, d time.Duration, s vm.State) {
	t.Helper()
	waitFor(t, d, fmt.Sprintf("%s event", s), func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, got := range e.states {
			if got == s {
				return true
			}
		}
		return false
	})
}
