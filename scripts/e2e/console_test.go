//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/creack/pty"

	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/driver/qemu"
)

// TestConsole boots one VM and checks its display and serial console the way
// people use them: the web console in a real browser (Debian's headless
// Chromium, driven by chromedp), `fvm console` in a real PTY, and the results
// from inside the guest (which login prompt got the typed name).
func TestConsole(t *testing.T) {
	ensureImage(t)
	browserPath := chromium(t)
	const name = "con1"
	t0 := time.Now()
	// --cold: a boot, whose log the serial tab must show (a warm clone has none).
	if r := fvm(t, "run", "-d", "--cold", "debian-local", name, "--memory", "1G"); r.code != 0 {
		t.Fatalf("run -d: %s\nserial log:\n%s", r.stderr, tailFile(filepath.Join(layout.InstanceDir(name), "serial.log")))
	}
	t.Logf("MEASURE run -d to SSH-ready with a display: %s", time.Since(t0))
	t.Cleanup(func() { fvm(t, "rm", "-f", name) })
	c := client.New(layout.SocketPath())

	// A quiet screen: no kernel messages over the login prompts, so that two
	// pictures taken a moment apart are of the same screen.
	mustFVM(t, "exec", name, "--", "sudo", "dmesg", "-n", "1")
	waitGuest(t, name, "the gettys on tty1 and ttyS0", func(ps string) bool {
		return strings.Contains(ps, "tty1 ") && strings.Contains(ps, "ttyS0 ")
	})

	for _, sock := range []string{qemu.VNCSocket, qemu.SerialSocket} {
		st, err := os.Stat(filepath.Join(layout.InstanceDir(name), sock))
		if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want a socket with mode 0600", sock, st.Mode(), err)
		}
	}

	pageURL := strings.TrimSpace(mustFVM(t, "display", "--print-url", name))
	u, err := url.Parse(pageURL)
	if err != nil || u.Hostname() != "127.0.0.1" || u.Query().Get("code") == "" {
		t.Fatalf("display URL %q", pageURL)
	}
	origin := "http://" + u.Host

	ctx := newBrowser(t, browserPath)
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the screen connected", `window.fvm && window.fvm.status === "connected" && !!document.querySelector("#screen canvas")`)
	if loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`)); strings.Contains(loc, "code=") {
		t.Errorf("the one-time code stayed in the address bar: %s", loc)
	}

	t.Run("screen-matches-screendump", func(t *testing.T) {
		// The canvas and QEMU's screendump, taken one right after the other,
		// show the same picture (a blinking cursor aside), and it is no blank frame.
		var last string
		for try := 0; try < 10; try++ {
			canvas := canvasImage(t, ctx)
			dump := screendump(t, c, name)
			diff, lit := compareImages(canvas, dump)
			last = fmt.Sprintf("canvas %v, screendump %v: %.3f%% of pixels differ; %d lit pixels",
				canvas.Bounds().Size(), dump.Bounds().Size(), 100*diff, lit)
			if canvas.Bounds() == dump.Bounds() && diff < 0.002 && lit > 200 {
				t.Logf("MEASURE %s (try %d)", last, try+1)
				savePNG(t, "console-canvas.png", canvas)
				return
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("the page's canvas does not show the guest's screen: %s", last)
	})

	t.Run("keys-reach-the-guest", func(t *testing.T) {
		// The display's driver (virtio-gpu, loaded by udev's coldplug, which
		// yields the CPUs while the system starts) takes the screen over from
		// VGA text about when SSH is up: type once it has and its console is
		// drawn, or the screen compared is a blank one both times.
		mustFVM(t, "exec", name, "--", "sudo udevadm settle --timeout=120")
		before := stableScreen(t, c, name)
		failed := failedLogins(t, name, "tty1")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#screen canvas")), chromedp.KeyEvent("fvmkeys\r")); err != nil {
			t.Fatal(err)
		}
		// tty1's getty took the name and Enter, and ran login, which asks for a password.
		waitGuest(t, name, "login on tty1", func(ps string) bool { return hasLogin(ps, "tty1") })
		if diff, _ := compareImages(before, screendump(t, c, name)); diff == 0 {
			t.Error("the screen did not change after typing")
		}
		// login flushes what was typed before it asks for the password (there is
		// no prompt to wait for on a screen), so type it again until it counts.
		for try := 1; ; try++ {
			time.Sleep(2 * time.Second)
			if err := chromedp.Do(ctx, chromedp.KeyEvent("wrong\r")); err != nil {
				t.Fatal(err)
			}
			if waitFailedLoginFor(t, name, "tty1", failed, 20*time.Second) {
				break
			}
			if try == 3 {
				t.Fatal("no failed login on /dev/tty1 in the guest's journal: the typed password did not arrive")
			}
		}
	})

	t.Run("serial-tab", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("tab-serial"))); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the serial console connected", `window.fvm.status === "connected"`)
		waitJS(t, ctx, "the boot log and a login prompt in the serial tab",
			`window.fvm.serialText().includes("Linux version") && window.fvm.serialText().includes("login:")`)
		failed := failedLogins(t, name, "ttyS0")
		// Text goes in as the browser inserts it (chromedp's key events would
		// type each character twice into xterm.js); Enter as a key.
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\r"), insertText("fvmserial"), chromedp.KeyEvent("\r")); err != nil {
			t.Fatal(err)
		}
		waitGuest(t, name, "login on ttyS0", func(ps string) bool { return hasLogin(ps, "ttyS0") })
		waitJS(t, ctx, "the name echoed and the password prompt in the serial tab",
			`window.fvm.serialText().includes("login: fvmserial") && window.fvm.serialText().includes("Password:")`)
		if err := chromedp.Do(ctx, insertText("wrong"), chromedp.KeyEvent("\r")); err != nil {
			t.Fatal(err)
		}
		waitFailedLogin(t, name, "ttyS0", failed)
		waitJS(t, ctx, "a new login prompt in the serial tab", `window.fvm.serialText().includes("Login incorrect")`)
		if hash, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`)); hash != "#serial" {
			t.Errorf("location.hash = %q, want #serial (a reload keeps the tab)", hash)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		page := (&url.URL{Scheme: "http", Host: u.Host, Path: u.Path}).String()
		status := func(req *http.Request) int {
			t.Helper()
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		get := func(raw string, edit func(*http.Request)) int {
			req, _ := http.NewRequest("GET", raw, nil)
			if edit != nil {
				edit(req)
			}
			return status(req)
		}
		if code := get(page, nil); code != 403 {
			t.Errorf("the page without its code: %d, want 403", code)
		}
		if code := get(page+"?code=not-the-code", nil); code != 403 {
			t.Errorf("a wrong code: %d, want 403", code)
		}
		// The browser above spent its URL's code: anyone else who read the URL
		// (a browser's command line is public in /proc) gets nothing with it.
		if code := get(pageURL, nil); code != 403 {
			t.Errorf("a second use of the code Chromium was given: %d, want 403", code)
		}
		fresh := strings.TrimSpace(mustFVM(t, "display", "--print-url", name))
		if fresh == pageURL {
			t.Fatalf("fvm display printed the same one-time URL twice: %s", fresh)
		}
		if code := get(fresh, func(r *http.Request) { r.Host = "rebound.example:" + u.Port() }); code != 403 {
			t.Errorf("a foreign Host: %d, want 403", code)
		}
		if code := get(fresh, nil); code != 200 { // follows the redirect with its cookie
			t.Fatalf("the page with a fresh code: %d, want 200", code)
		}
		jar2, _ := cookiejar.New(nil)
		resp, err := (&http.Client{Jar: jar2, Timeout: 10 * time.Second}).Get(fresh)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 || len(jar2.Cookies(u)) != 0 {
			t.Errorf("the fresh code used a second time: %s, cookies %v, want 403 and none", resp.Status, jar2.Cookies(u))
		}
		ws := "ws://" + u.Host + u.Path + "ws/vnc"
		hdr := http.Header{"Origin": {"http://evil.example"}}
		for _, ck := range jar.Cookies(u) {
			hdr.Add("Cookie", ck.Name+"="+ck.Value)
		}
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn, resp, err := websocket.Dial(dctx, ws, &websocket.DialOptions{HTTPHeader: hdr}); err == nil {
			conn.CloseNow()
			t.Error("a WebSocket with a foreign Origin (and a good cookie) was accepted")
		} else if resp == nil || resp.StatusCode != 403 {
			t.Errorf("a WebSocket with a foreign Origin: %v %v, want 403", resp, err)
		}
		hdr.Set("Origin", origin)
		conn, _, err := websocket.Dial(dctx, ws, &websocket.DialOptions{HTTPHeader: hdr})
		if err != nil {
			t.Fatalf("a WebSocket from the page's own origin: %v", err)
		}
		_, msg, err := conn.Read(dctx)
		conn.CloseNow()
		if err != nil || !bytes.HasPrefix(msg, []byte("RFB ")) {
			t.Errorf("the VNC bridge greets with %q (%v), want RFB", msg, err)
		}
		// A page of another origin, in the same browser (which holds the
		// console's cookie), cannot open the VM's screen.
		if got := crossSiteWebSocket(t, ctx, ws); got != "refused" {
			t.Errorf("a WebSocket from another site's page: %s, want refused", got)
		}
		// Nothing listens on the port at any other address of this machine.
		for _, ip := range otherAddrs(t) {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, u.Port()), time.Second); err == nil {
				c.Close()
				t.Errorf("the web console answers on %s", ip)
			}
		}
	})

	t.Run("fvm-console-pty", func(t *testing.T) {
		a := startConsole(t, name)
		a.waitFor(t, "Ctrl-] detaches")
		a.waitFor(t, "Login incorrect") // the tail of earlier output: the web test's attempt
		a.send("\r")                    // a fresh prompt
		a.waitFor(t, "login:")
		a.send("fvmpty\r")
		a.waitFor(t, "Password:")

		b := startConsole(t, name, "--tail", "0")
		b.waitFor(t, "Ctrl-] detaches")
		failed := failedLogins(t, name, "ttyS0")
		a.send("wrong\r") // one console types; both see the answer, and the guest got it
		a.waitFor(t, "Login incorrect")
		b.waitFor(t, "Login incorrect")
		waitFailedLogin(t, name, "ttyS0", failed)

		a.send("\x1d") // Ctrl-]
		if code := a.wait(t); code != 0 {
			t.Errorf("fvm console exited %d after Ctrl-], want 0:\n%s", code, a.output())
		}
		if !strings.Contains(a.output(), "Detached from "+name) {
			t.Errorf("no detach message:\n%s", a.output())
		}
		if v, err := c.Get(context.Background(), name); err != nil || v.State != "running" {
			t.Fatalf("after a detach the VM is %s (%v), want running", v.State, err)
		}
		b.send("\r") // the other console is still attached
		b.waitFor(t, "login:")
		b.send("\x1d")
		b.wait(t)
		mustFVM(t, "exec", name, "true") // and the VM still answers
	})

	t.Run("fvm-screenshot", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "screen.png")
		mustFVM(t, "screenshot", name, file)
		img := pngFile(t, file)
		if _, lit := compareImages(img, img); img.Bounds().Dx() < 640 || lit < 200 {
			t.Errorf("screenshot %v with %d lit pixels", img.Bounds(), lit)
		}
		if r := fvm(t, "screenshot", name, filepath.Join(t.TempDir(), "screen.jpg")); r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("a .jpg name: %+v, want a one-line error", r)
		}
	})

	// Last: it stops the VM. The open page says the VM is stopped, and
	// connects again on its own once the VM runs.
	t.Run("page-follows-stop-and-start", func(t *testing.T) {
		chromedp.Do(ctx, chromedp.Click(chromedp.ID("tab-screen")))
		// Mark this run's canvas: the screen of the next run must be a new connection's.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector("#screen canvas").dataset.run = "old", true)`)); err != nil {
			t.Fatal(err)
		}
		mustFVM(t, "stop", "-f", name)
		waitJS(t, ctx, "the page to say the VM is stopped", `window.fvm.status === "stopped" && document.getElementById("status").textContent.includes("is stopped")`)
		if _, err := c.Start(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the page to connect to the started VM", `window.fvm.status === "connected" && document.querySelectorAll("#screen canvas").length === 1 && document.querySelector("#screen canvas").dataset.run !== "old"`)
		deadline := time.Now().Add(90 * time.Second)
		for {
			if _, lit := compareImages(canvasImage(t, ctx), image.NewRGBA(image.Rect(0, 0, 1, 1))); lit > 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the reconnected page shows a blank screen")
			}
			time.Sleep(2 * time.Second)
		}
	})
}

// chromium finds Debian's chromium, which scripts/setup.sh installs.
func chromium(t *testing.T) string {
	for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("no chromium for the browser tests: apt-get install chromium (scripts/setup.sh does)")
	return ""
}

func newBrowser(t *testing.T, path string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 950), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// waitJS waits until a JavaScript expression is true in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status") ? document.getElementById("status").textContent : ""`))
			t.Fatalf("timed out waiting for %s (%v); the page's status: %q", what, err, status)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// canvasImage is what noVNC's canvas shows, read back as PNG.
func canvasImage(t *testing.T, ctx context.Context) image.Image {
	t.Helper()
	data, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#screen canvas").toDataURL("image/png")`))
	if err != nil {
		t.Fatal(err)
	}
	b64, ok := strings.CutPrefix(data, "data:image/png;base64,")
	if !ok {
		t.Fatalf("canvas data URL %.40q", data)
	}
	img, err := png.Decode(base64Reader(b64))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pngFile decodes the PNG at path (a screenshot fvm wrote).
func pngFile(t *testing.T, path string) image.Image {
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
	return img
}

func screendump(t *testing.T, c *client.Client, name string) image.Image {
	t.Helper()
	b, err := c.Screenshot(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// stableScreen returns the VM's screen once two dumps a second apart match
// (a blinking cursor aside), within 30 s.
func stableScreen(t *testing.T, c *client.Client, name string) image.Image {
	t.Helper()
	prev := screendump(t, c, name)
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		time.Sleep(time.Second)
		cur := screendump(t, c, name)
		if diff, lit := compareImages(prev, cur); diff < 0.0002 && lit > 0 {
			return cur
		}
		prev = cur
	}
	t.Fatal("the screen did not settle within 30 s")
	return nil
}

// compareImages returns the fraction of pixels of a that differ from b by more
// than a small tolerance on some channel (all of them when the sizes differ),
// and how many pixels of a are not black.
func compareImages(a, b image.Image) (diff float64, lit int) {
	r := a.Bounds()
	same := r == b.Bounds()
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ar, ag, ab, _ := a.At(x, y).RGBA()
			if ar>>8+ag>>8+ab>>8 > 48 {
				lit++
			}
			if !same {
				continue
			}
			br, bg, bb, _ := b.At(x, y).RGBA()
			if absDiff(ar>>8, br>>8) > 24 || absDiff(ag>>8, bg>>8) > 24 || absDiff(ab>>8, bb>>8) > 24 {
				n++
			}
		}
	}
	if !same {
		return 1, lit
	}
	return float64(n) / float64(r.Dx()*r.Dy()), lit
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

func savePNG(t *testing.T, name string, img image.Image) {
	dir := os.Getenv("FVM_E2E_ARTIFACTS")
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err == nil {
		png.Encode(f, img)
		f.Close()
	}
}

// waitGuest polls the guest's process list (tty and command line) until ok.
func waitGuest(t *testing.T, name, what string, ok func(ps string) bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var ps string
	for time.Now().Before(deadline) {
		out, err := quietExec(name, "ps", "-eo", "tty=,args=")
		ps = out
		if err == nil && ok(ps) {
			return
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("timed out waiting for %s in the guest; its processes:\n%s", what, ps)
}

// quietExec runs a command in the guest without logging it (they are polled).
func quietExec(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, fvmBin, append([]string{"exec", name, "--"}, args...)...).Output()
	return string(out), err
}

// hasLogin reports whether login(1) runs on tty: its getty took a name and
// Enter typed at its prompt.
func hasLogin(ps, tty string) bool {
	for _, l := range strings.Split(ps, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == tty && strings.HasSuffix(f[1], "/login") {
			return true
		}
	}
	return false
}

// failedLogins counts login's failed attempts on tty in the guest's journal: a
// whole attempt (name, Enter, password, Enter) reached that terminal. Debian 12's
// login (shadow) logs "FAILED LOGIN (1) on '/dev/tty1' FOR ...", Debian 13's
// (util-linux) "FAILED LOGIN 1 FROM tty1 FOR ...".
func failedLogins(t *testing.T, name, tty string) int {
	t.Helper()
	out, err := quietExec(name, "sudo", "journalctl", "-q", "--no-pager", "-o", "cat", "SYSLOG_IDENTIFIER=login")
	if err != nil {
		t.Fatalf("read the guest's journal: %v", err)
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "FAILED LOGIN") && (strings.Contains(l, "'/dev/"+tty+"'") || strings.Contains(l, " FROM "+tty+" FOR ")) {
			n++
		}
	}
	return n
}

func waitFailedLogin(t *testing.T, name, tty string, before int) {
	t.Helper()
	if !waitFailedLoginFor(t, name, tty, before, 60*time.Second) {
		t.Fatalf("no failed login on /dev/%s in the guest's journal: the typed password did not arrive", tty)
	}
}

// waitFailedLoginFor waits up to d for a failed login on tty beyond before.
func waitFailedLoginFor(t *testing.T, name, tty string, before int, d time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(d); failedLogins(t, name, tty) <= before; time.Sleep(2 * time.Second) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// insertText types text as the browser inserts it (Input.insertText).
func insertText(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}

// crossSiteWebSocket opens a page of another origin (a server on another
// port) in the browser and has it try a WebSocket to target; it says whether
// the console opened it.
func crossSiteWebSocket(t *testing.T, ctx context.Context, target string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><script>
window.result = "pending";
const ws = new WebSocket(%q);
ws.onopen = () => { window.result = "opened"; ws.close(); };
ws.onerror = () => { if (window.result === "pending") window.result = "refused"; };
</script>`, target)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	tab, cancel := chromedp.NewContext(ctx)
	defer cancel()
	evil := "http://localhost:" + fmt.Sprint(ln.Addr().(*net.TCPAddr).Port) + "/"
	if err := chromedp.Do(tab, chromedp.Navigate(evil)); err != nil {
		t.Fatal(err)
	}
	var result string
	for i := 0; i < 40; i++ {
		result, _ = chromedp.Run(tab, chromedp.Evaluate[string](`window.result`))
		if result != "pending" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	return result
}

// otherAddrs are this machine's addresses other than 127.0.0.1.
func otherAddrs(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"::1"}
	for _, a := range addrs {
		ip, _, err := net.ParseCIDR(a.String())
		if err != nil || ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.IsLinkLocalUnicast() || ip.Equal(net.IPv6loopback) {
			continue
		}
		out = append(out, ip.String())
	}
	return out
}

// ptyConsole is `fvm console` running in a real pseudo-terminal.
type ptyConsole struct {
	cmd  *exec.Cmd
	ptmx *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	seen int // where the next waitFor starts looking
	done chan struct{}
	read chan struct{} // closed when all the output is read (the terminal closed)
}

func startConsole(t *testing.T, name string, flags ...string) *ptyConsole {
	t.Helper()
	cmd := exec.Command(fvmBin, append(append([]string{"console"}, flags...), name)...)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	p := &ptyConsole{cmd: cmd, ptmx: ptmx, done: make(chan struct{}), read: make(chan struct{})}
	go func() {
		defer close(p.read)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		ptmx.Close()
	})
	return p
}

func (p *ptyConsole) send(s string) { p.ptmx.Write([]byte(s)) }

func (p *ptyConsole) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the output after what earlier waits matched contains s.
func (p *ptyConsole) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		out := p.out.String()
		if i := strings.Index(out[p.seen:], s); i >= 0 {
			p.seen += i + len(s)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("fvm console: timed out waiting for %q; output:\n%s", s, p.output())
}

func (p *ptyConsole) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		select { // the last words it printed
		case <-p.read:
		case <-time.After(5 * time.Second):
		}
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		t.Fatalf("fvm console did not exit; output:\n%s", p.output())
		return -1
	}
}

func base64Reader(s string) *bytes.Reader {
	b, _ := base64.StdEncoding.DecodeString(s)
	return bytes.NewReader(b)
}
