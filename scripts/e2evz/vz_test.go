//go:build e2e

// Package e2evz boots a real Debian VM on the vz backend: macOS 13+ only, run
// by `make e2e-vz` on a Mac (it builds and signs bin/fvm.app first). Elsewhere
// every test skips with the reason. FVM_BIN is the CLI inside the bundle, so
// the host it runs finds the helper beside it; FVM_E2E_HOME keeps the state
// dir (and the pulled image) between runs; FVM_E2E_VZ_IMAGE picks the image
// (default: the catalog's debian for this Mac's architecture).
package e2evz

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	vzd "github.com/fvmhq/fvm/core/driver/vz"
	"github.com/fvmhq/fvm/core/store"
)

var (
	fvmBin string
	home   string
	layout store.Layout
	host   *exec.Cmd // the fvm daemon these tests run (started by startHost)
)

func TestMain(m *testing.M) {
	if runtime.GOOS != "darwin" {
		fmt.Printf("SKIP: the vz backend needs macOS %d+ (Apple's Virtualization framework); this is %s: run `make e2e-vz` on a Mac\n", vzd.MinMacOS, runtime.GOOS)
		os.Exit(0)
	}
	if why := vzd.Unavailable(runtime.GOOS, vzd.MacOSVersion()); why != "" {
		fmt.Println("SKIP:", why)
		os.Exit(0)
	}
	if fvmBin = os.Getenv("FVM_BIN"); fvmBin == "" {
		fmt.Println("SKIP: FVM_BIN is not set: run `make e2e-vz`")
		os.Exit(0)
	}
	if home = os.Getenv("FVM_E2E_HOME"); home == "" {
		var err error
		if home, err = os.MkdirTemp("/tmp", "fvm-e2evz."); err != nil { // short: socket paths
			panic(err)
		}
		defer os.RemoveAll(home)
	}
	os.Setenv("FVM_HOME", home)
	layout = store.DefaultLayout()
	code := m.Run()
	for _, n := range []string{"vz1", "vz2"} {
		exec.Command(fvmBin, "rm", "-f", n).Run()
	}
	stopHost()
	os.Exit(code)
}

// startHost runs `fvm daemon` from the bundle, as a process of its own the
// tests can kill -9 (the CLI would otherwise start the installed app, whose
// environment has no FVM_HOME).
func startHost(t *testing.T) {
	t.Helper()
	host = exec.Command(fvmBin, "daemon")
	logf, err := os.OpenFile(filepath.Join(home, "e2e-host.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	host.Stdout, host.Stderr = logf, logf
	host.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if st, err := os.Stat(layout.SocketPath()); err == nil && st.Mode()&os.ModeSocket != 0 {
			if r := run(t, "version"); r.code == 0 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("fvm daemon did not come up; see " + filepath.Join(home, "e2e-host.log"))
}

func stopHost() {
	if host != nil && host.Process != nil {
		host.Process.Signal(syscall.SIGTERM)
		host.Wait()
		host = nil
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fvmBin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fvm %v: %v", args, err)
	}
	t.Logf("$ fvm %s → %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func must(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, args...)
	if r.code != 0 {
		t.Fatalf("fvm %v failed (%d): %s", args, r.code, r.stderr)
	}
	return r.stdout
}

func inspect(t *testing.T, name string) api.VM {
	t.Helper()
	var v api.VM
	if err := json.Unmarshal([]byte(must(t, "inspect", name)), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// showWindow asks the VM's helper for its display window over the control
// socket (the protocol `fvm display` and the app's Open Display use through
// the host) and returns the window number.
func showWindow(t *testing.T, dir string) int {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(dir, vzd.ControlSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintln(c, `{"op":"show-window"}`)
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var resp vzd.ControlResponse
	if err := json.Unmarshal(line, &resp); err != nil || !resp.OK || resp.Window == 0 {
		t.Fatalf("show-window: %s %v", line, err)
	}
	return resp.Window
}

// TestVZ is one VM through its life on vz: create (clone), boot, SSH, shared
// folders (read-write and read-only), a -p forward, stop/start keeps a file, the host killed -9 leaves it running and
// a new host re-adopts it, the display window, suspend/resume where macOS
// can, and rm leaves nothing.
func TestVZ(t *testing.T) {
	startHost(t)
	check := must(t, "check")
	if !strings.Contains(check, "vz: disk: raw-clone") || !strings.Contains(check, "[ok  ] vz helper") {
		t.Fatalf("fvm check does not report vz available with its signed helper:\n%s", check)
	}
	img := os.Getenv("FVM_E2E_VZ_IMAGE")
	if img == "" {
		img = "debian"
		must(t, "pull", img) // the catalog's Debian for this Mac's architecture
	}
	port := freePort(t)
	shared, ro := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(shared, "from-mac"), []byte("hello guest\n"), 0o644)
	os.WriteFile(filepath.Join(ro, "keep"), []byte("read only\n"), 0o644)
	t0 := time.Now()
	must(t, "create", img, "vz1", "--backend", "vz", "--cpus", "2", "--memory", "2G", "--disk", "20G", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port),
		"-v", shared+":/mnt/shared", "-v", ro+":/mnt/ro:ro")
	t.Logf("create (first VM of this base: includes the raw conversion) took %s", time.Since(t0))
	v := inspect(t, "vz1")
	if v.Backend != "vz" {
		t.Fatalf("backend %q", v.Backend)
	}
	if b, _ := os.ReadFile(filepath.Join(home, "e2e-host.log")); !bytes.Contains(b, []byte(`vm "vz1": disk cloned from`)) {
		t.Errorf("the disk was not an APFS clone (see the host log):\n%s", b)
	}

	t0 = time.Now()
	must(t, "start", "vz1")
	t.Logf("start → SSH ready in %s", time.Since(t0))
	if got := strings.TrimSpace(must(t, "ssh", "vz1", "--", "cat", "/etc/hostname")); got != "vz1" {
		t.Fatalf("hostname %q", got)
	}

	// -v: virtiofs both ways; a read-only share refuses the guest's writes.
	if got := strings.TrimSpace(must(t, "ssh", "vz1", "--", "cat /mnt/shared/from-mac && echo hello mac > /mnt/shared/from-guest")); got != "hello guest" {
		t.Fatalf("shared folder: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(shared, "from-guest")); err != nil || string(b) != "hello mac\n" {
		t.Fatalf("the guest's file on the Mac: %q %v", b, err)
	}
	if r := run(t, "ssh", "vz1", "--", "touch /mnt/ro/x"); r.code == 0 {
		t.Fatal("a write to a read-only share succeeded")
	}
	if got := strings.TrimSpace(must(t, "ssh", "vz1", "--", "cat /mnt/ro/keep")); got != "read only" {
		t.Fatalf("read-only share: %q", got)
	}

	// -p: a server in the guest on 8080, reached on the Mac's 127.0.0.1.
	must(t, "ssh", "vz1", "--", "mkdir -p /tmp/www && echo fvm-forward-ok > /tmp/www/i && cd /tmp/www && (setsid python3 -m http.server 8080 >/dev/null 2>&1 &)")
	var body string
	for i := 0; i < 50 && body != "fvm-forward-ok"; i++ {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/i", port)); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = strings.TrimSpace(string(b))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if body != "fvm-forward-ok" {
		t.Fatalf("-p forward: got %q", body)
	}

	// stop/start keeps a file.
	must(t, "ssh", "vz1", "--", "echo kept > ~/keep && sync")
	must(t, "stop", "vz1")
	must(t, "start", "vz1")
	if got := strings.TrimSpace(must(t, "ssh", "vz1", "--", "cat ~/keep")); got != "kept" {
		t.Fatalf("after stop/start: %q", got)
	}

	// kill -9 of the host: the VM runs on, and the next host re-adopts it.
	pid := inspect(t, "vz1").PID
	host.Process.Kill()
	host.Wait()
	host = nil
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the helper (pid %d) died with the host: %v", pid, err)
	}
	startHost(t)
	if v := inspect(t, "vz1"); v.PID != pid || v.State != "running" {
		t.Fatalf("after the host came back: pid %d state %s, want %d running", v.PID, v.State, pid)
	}
	if got := strings.TrimSpace(must(t, "ssh", "vz1", "--", "cat ~/keep")); got != "kept" {
		t.Fatalf("after re-adoption: %q", got)
	}

	// Open Display: the helper's window, captured; asked again, the same window.
	win := showWindow(t, v.Dir)
	shot := filepath.Join(home, "vz1-window.png")
	time.Sleep(2 * time.Second) // let the view draw a frame
	if out, err := exec.Command("screencapture", "-x", "-o", "-l"+strconv.Itoa(win), shot).CombinedOutput(); err != nil {
		t.Fatalf("screencapture of window %d: %v: %s (grant the terminal Screen Recording in System Settings)", win, err, out)
	}
	checkScreenshot(t, shot)
	if again := showWindow(t, v.Dir); again != win {
		t.Errorf("second Open Display made window %d, want the same window %d", again, win)
	}
	if st := inspect(t, "vz1").State; st != "running" {
		t.Fatalf("state after the display: %s", st)
	}

	// Suspend and resume (macOS 14+ on Apple silicon): the guest's uptime goes on.
	if runtime.GOARCH == "arm64" && strings.Contains(check, "save state") {
		suspendResume(t, v.Dir)
	} else {
		t.Log("save state: not on this Mac (macOS 14+ on Apple silicon only)")
	}

	// rm leaves nothing: no directory, no helper.
	must(t, "rm", "-f", "vz1")
	if _, err := os.Stat(v.Dir); !os.IsNotExist(err) {
		t.Errorf("VM directory left: %v", err)
	}
	if err := syscall.Kill(inspectPIDGone(t, pid), 0); err == nil {
		t.Errorf("helper %d still running after rm", pid)
	}
}

func inspectPIDGone(t *testing.T, pid int) int {
	for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	return pid
}

// checkScreenshot: a PNG of the window with something drawn in it (firmware,
// kernel or console text on the guest's screen).
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	b := img.Bounds()
	lit := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r+g+bl > 0x6000 {
				lit++
			}
		}
	}
	t.Logf("window screenshot %s: %dx%d, %d lit samples", path, b.Dx(), b.Dy(), lit)
	if b.Dx() < 320 || b.Dy() < 200 || lit == 0 {
		t.Errorf("the display window shows nothing (%dx%d, %d lit samples): see %s", b.Dx(), b.Dy(), lit, path)
	}
}

// suspendResume suspends the VM (`fvm suspend`: the helper saves its state
// and ends), then starts it again, which resumes it.
func suspendResume(t *testing.T, dir string) {
	t.Helper()
	before, _ := strconv.ParseFloat(strings.Fields(must(t, "ssh", "vz1", "--", "cat /proc/uptime"))[0], 64)
	t0 := time.Now()
	if r := run(t, "suspend", "vz1"); r.code != 0 {
		if strings.Contains(r.stderr, "save") && strings.Contains(strings.ToLower(r.stderr), "support") {
			// Virtualization.framework decides which device sets it can save
			// (validateSaveRestoreSupport), and this VM has shared folders.
			t.Logf("vz cannot save this VM's devices (it runs on): %s", r.stderr)
			if st := inspect(t, "vz1").State; st != "running" {
				t.Fatalf("a refused suspend left the VM %s", st)
			}
			return
		}
		t.Fatalf("suspend: %s", r.stderr)
	}
	t.Logf("suspend (save state) took %s", time.Since(t0))
	if st := inspect(t, "vz1").State; st != "suspended" {
		t.Fatalf("state after suspend: %s", st)
	}
	if _, err := os.Stat(filepath.Join(dir, vzd.StateFile)); err != nil {
		t.Fatalf("no saved state: %v", err)
	}
	t0 = time.Now()
	if out := run(t, "start", "vz1"); out.code != 0 || !strings.Contains(out.stderr, "Resum") {
		t.Fatalf("start after suspend did not resume: %d %s", out.code, out.stderr)
	}
	t.Logf("resume → SSH ready in %s", time.Since(t0))
	after, _ := strconv.ParseFloat(strings.Fields(must(t, "ssh", "vz1", "--", "cat /proc/uptime"))[0], 64)
	if after < before {
		t.Fatalf("uptime %.0fs after resume, %.0fs before: the guest booted afresh", after, before)
	}
	if _, err := os.Stat(filepath.Join(dir, vzd.StateFile)); !os.IsNotExist(err) {
		t.Errorf("the saved state is still there after resuming: %v", err)
	}
}

// TestVZRosetta runs an x86-64 program in an arm64 guest (Apple silicon with
// Rosetta installed), and checks that --rosetta is refused elsewhere.
func TestVZRosetta(t *testing.T) {
	if runtime.GOARCH != "arm64" {
		t.Skip("Rosetta is for Apple silicon")
	}
	if host == nil {
		startHost(t)
	}
	if !strings.Contains(must(t, "check"), "Rosetta installed") {
		t.Skip("Rosetta is not installed: softwareupdate --install-rosetta --agree-to-license")
	}
	r := run(t, "create", "debian", "amd64", "bad", "--rosetta")
	if r.code == 0 || !strings.Contains(r.stderr, "rosetta") {
		t.Fatalf("--rosetta on an amd64 VM: %d %s", r.code, r.stderr)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.go")
	os.WriteFile(src, []byte("package main\n\nimport (\"fmt\"; \"runtime\")\n\nfunc main() { fmt.Println(\"hello from\", runtime.GOARCH) }\n"), 0o644)
	bin := filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-o", bin, src)
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build an x86-64 program: %v: %s", err, out)
	}
	must(t, "run", "-d", "debian", "vz2", "--backend", "vz", "--rosetta")
	defer run(t, "rm", "-f", "vz2")
	in, _ := os.Open(bin)
	defer in.Close()
	cmd := exec.Command(fvmBin, "ssh", "vz2", "--", "cat > /tmp/hello && chmod +x /tmp/hello && /tmp/hello")
	cmd.Stdin = in
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello from amd64") {
		t.Fatalf("an x86-64 program in the arm64 guest: %v: %s", err, out)
	}
}
