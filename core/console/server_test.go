package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// fakeHost knows VMs by name.
type fakeHost struct {
	mu      sync.Mutex
	targets map[string]Target
}

func (h *fakeHost) ConsoleTarget(_ context.Context, name string) (Target, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.targets[name]
	if !ok {
		return Target{}, api.Errorf(api.CodeNotFound, "vm %q does not exist", name)
	}
	return t, nil
}

func (h *fakeHost) set(name string, t Target) {
	h.mu.Lock()
	h.targets[name] = t
	h.mu.Unlock()
}

type testConsole struct {
	s    *Server
	host *fakeHost
	base string // http://127.0.0.1:PORT
	port int
}

func startConsole(t *testing.T) *testConsole {
	t.Helper()
	h := &fakeHost{targets: map[string]Target{}}
	s := New(Options{Host: h})
	ln, err := s.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Handler: s.Handler(), BaseContext: func(net.Listener) context.Context { return ctx }}
	go srv.Serve(ln)
	t.Cleanup(func() { cancel(); srv.Close() })
	return &testConsole{s: s, host: h, base: fmt.Sprintf("http://127.0.0.1:%d", s.Port()), port: s.Port()}
}

// browser is an HTTP client with a cookie jar that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// login opens the VM's link in a fresh browser and returns it, with its cookie.
func (tc *testConsole) login(t *testing.T, name string) *http.Client {
	t.Helper()
	u, err := tc.s.URL(name, false)
	if err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	resp, _ := get(t, c, u, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/vm/"+name+"/" {
		t.Fatalf("code exchange: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	return c
}

func TestURLAndCookie(t *testing.T) {
	tc := startConsole(t)
	tc.host.set("web1", Target{State: vm.Running})
	u, err := tc.s.URL("web1", true)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	code := pu.Query().Get(codeParam)
	if pu.Host != fmt.Sprintf("127.0.0.1:%d", tc.port) || pu.Path != "/vm/web1/" || len(code) < 40 || pu.Fragment != "serial" || pu.Query().Has("token") {
		t.Fatalf("URL %s", u)
	}
	u2, _ := tc.s.URL("web1", true)
	if u2 == u {
		t.Errorf("a second URL for the same VM is the same one-time URL: %s", u2)
	}
	c := browser(t)
	resp, _ := get(t, c, u, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("code exchange: %s", resp.Status)
	}
	// The code is spent: a second use (another local user who read it from the
	// browser's command line) is refused, and buys no cookie.
	thief := browser(t)
	if resp, body := get(t, thief, u, nil); resp.StatusCode != 403 || len(resp.Cookies()) != 0 || !strings.Contains(body, "used already") {
		t.Errorf("a second use of the code: %s %q, cookies %v", resp.Status, body, resp.Cookies())
	}
	if resp, _ := get(t, thief, tc.base+"/vm/web1/", nil); resp.StatusCode != 403 {
		t.Errorf("the page after a refused second use: %s", resp.Status)
	}
	// The other URL is still good once; an expired one is not.
	if resp, _ := get(t, browser(t), u2, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the second URL's first use: %s", resp.Status)
	}
	late, _ := tc.s.URL("web1", false)
	tc.s.mu.Lock()
	tc.s.now = func() time.Time { return time.Now().Add(codeTTL + time.Second) }
	tc.s.mu.Unlock()
	if resp, _ := get(t, browser(t), late, nil); resp.StatusCode != 403 {
		t.Errorf("an expired code: %s", resp.Status)
	}
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == cookieName {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/vm/web1/" || ck.Value == code {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/vm/web1/, not the code", ck)
	}
	resp, body := get(t, c, tc.base+"/vm/web1/", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "/assets/console.js") {
		t.Fatalf("page with the cookie: %s %.200s", resp.Status, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	resp, body = get(t, c, tc.base+"/assets/console.js", nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || len(body) < 100000 {
		t.Errorf("console.js: %s %s, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
}

func TestRefusals(t *testing.T) {
	tc := startConsole(t)
	tc.host.set("web1", Target{State: vm.Running})
	tc.host.set("web2", Target{State: vm.Running})
	good, _ := tc.s.URL("web1", false)
	tc.s.URL("web2", false)
	c := tc.login(t, "web1")
	hostport := fmt.Sprintf("127.0.0.1:%d", tc.port)
	for _, tt := range []struct {
		what   string
		client *http.Client
		url    string
		hdr    map[string]string
		code   int
	}{
		{"no code, no cookie", browser(t), tc.base + "/vm/web1/", nil, 403},
		{"a wrong code", browser(t), tc.base + "/vm/web1/?code=" + strings.Repeat("A", 43), nil, 403},
		{"another VM's code", browser(t), strings.Replace(good, "/vm/web1/", "/vm/web2/", 1), nil, 403},
		{"an unknown VM", browser(t), tc.base + "/vm/ghost/?code=x", nil, 403},
		{"the session cookie's value as a code", browser(t), tc.base + "/vm/web1/?code=" + tc.s.accessOf("web1").session, nil, 403},
		{"web1's cookie on web2", c, tc.base + "/vm/web2/", nil, 403},
		{"the state without a cookie", browser(t), tc.base + "/vm/web1/state", nil, 403},
		{"a rebound Host", c, tc.base + "/vm/web1/", map[string]string{"Host": fmt.Sprintf("evil.example:%d", tc.port)}, 403},
		{"a Host without the port", c, tc.base + "/vm/web1/", map[string]string{"Host": "127.0.0.1"}, 403},
		{"a Host with another port", c, tc.base + "/vm/web1/", map[string]string{"Host": "127.0.0.1:1"}, 403},
		{"a good code behind a rebound Host", browser(t), good, map[string]string{"Host": "attacker.test"}, 403},
		{"a foreign Origin", c, tc.base + "/vm/web1/state", map[string]string{"Origin": "http://evil.example"}, 403},
		{"an https Origin", c, tc.base + "/vm/web1/state", map[string]string{"Origin": "https://" + hostport}, 403},
		{"the page itself", c, tc.base + "/vm/web1/", nil, 200},
		{"localhost", c, tc.base + "/vm/web1/state", map[string]string{"Host": fmt.Sprintf("localhost:%d", tc.port), "Origin": fmt.Sprintf("http://localhost:%d", tc.port)}, 403}, // the cookie is 127.0.0.1's
		{"its own Origin", c, tc.base + "/vm/web1/state", map[string]string{"Origin": "http://" + hostport}, 200},
	} {
		resp, body := get(t, tt.client, tt.url, tt.hdr)
		if resp.StatusCode != tt.code {
			t.Errorf("%s: %s %q, want %d", tt.what, resp.Status, body, tt.code)
		}
	}
	// localhost:PORT is a Host of the console too (its cookie is its own).
	resp, _ := get(t, browser(t), strings.Replace(good, "127.0.0.1", "localhost", 1), nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("code via localhost: %s", resp.Status)
	}

	// A removed VM's links and cookies die with it.
	unused, _ := tc.s.URL("web1", false)
	tc.s.Forget("web1")
	if resp, _ := get(t, c, tc.base+"/vm/web1/", nil); resp.StatusCode != 403 {
		t.Errorf("cookie after Forget: %s", resp.Status)
	}
	if resp, _ := get(t, browser(t), unused, nil); resp.StatusCode != 403 {
		t.Errorf("an unused code after Forget: %s", resp.Status)
	}
	if u, _ := tc.s.URL("web1", false); u == good || u == unused {
		t.Error("a new VM of the same name got an old code")
	}
}

// dialWS opens a WebSocket with the client's cookies and the given Origin.
func dialWS(t *testing.T, tc *testConsole, c *http.Client, path, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	u, _ := url.Parse(tc.base + path)
	hdr := http.Header{}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	for _, ck := range c.Jar.Cookies(u) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(tc.base, "http")+path, &websocket.DialOptions{HTTPHeader: hdr})
}

func TestVNCBridge(t *testing.T) {
	tc := startConsole(t)
	sock, closed := fakeRFB(t)
	tc.host.set("web1", Target{State: vm.Running, VNC: unixDial(sock)})
	tc.s.URL("web1", false)
	c := tc.login(t, "web1")
	own := "http://" + strings.TrimPrefix(tc.base, "http://")

	for _, tt := range []struct {
		what, origin string
		client       *http.Client
	}{
		{"a foreign Origin", "http://evil.example", c},
		{"a look-alike Origin", own + ".evil.example", c},
		{"no cookie", own, browser(t)},
	} {
		_, resp, err := dialWS(t, tc, tt.client, "/vm/web1/ws/vnc", tt.origin)
		if err == nil || resp == nil || resp.StatusCode != 403 {
			t.Errorf("WebSocket with %s: %v (%v), want 403", tt.what, resp, err)
		}
	}

	ws, _, err := dialWS(t, tc, c, "/vm/web1/ws/vnc", own)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	readUntil(t, nc, "RFB 003.008\n")
	nc.Write([]byte("RFB 003.008\n"))
	readUntil(t, nc, "RFB 003.008\n") // the fake echoes
	nc.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the VNC connection stayed open after the browser left")
	}

	// A stopped VM: the state says so, and the screen is refused (not 403).
	tc.host.set("web1", Target{State: vm.Stopped})
	resp, body := get(t, c, tc.base+"/vm/web1/state", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"state":"stopped"`) || !strings.Contains(body, `"display":false`) {
		t.Errorf("state of a stopped VM: %s %s", resp.Status, body)
	}
	if _, resp, err := dialWS(t, tc, c, "/vm/web1/ws/vnc", own); err == nil || resp == nil || resp.StatusCode != http.StatusConflict {
		t.Errorf("screen of a stopped VM: %v, %v; want 409", resp, err)
	}
}

func TestVNCBridgeEndsWithTheVM(t *testing.T) {
	tc := startConsole(t)
	dir := t.TempDir()
	sock := dir + "/v.sock"
	if len(sock) > 100 {
		t.Skip("temp dir too long for a socket")
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("RFB 003.008\n"))
			time.Sleep(100 * time.Millisecond)
			c.Close() // QEMU went away
		}
	}()
	tc.host.set("web1", Target{State: vm.Running, VNC: unixDial(sock)})
	tc.s.URL("web1", false)
	c := tc.login(t, "web1")
	ws, _, err := dialWS(t, tc, c, "/vm/web1/ws/vnc", tc.base)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := ws.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
				t.Fatalf("end of the VM: %v, want a going-away close", err)
			}
			break
		}
	}
}

func TestSerialBridge(t *testing.T) {
	tc := startConsole(t)
	f := newFakeSerial(t)
	f.guest("boot line\r\nweb1 login: ")
	m := NewMux(unixDial(f.socket), fileLog(f.log))
	tc.host.set("web1", Target{State: vm.Running, Serial: m})
	tc.s.URL("web1", true)
	c := tc.login(t, "web1")
	if _, resp, err := dialWS(t, tc, c, "/vm/web1/ws/serial", "http://evil.example"); err == nil || resp.StatusCode != 403 {
		t.Errorf("serial with a foreign Origin: %v, %v", resp, err)
	}
	ws, _, err := dialWS(t, tc, c, "/vm/web1/ws/serial?tail=5", tc.base)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	readUntil(t, nc, "boot line\r\nweb1 login: ")
	nc.Write([]byte("root\r"))
	f.waitFor("typed input", func() bool { return containsStr(string(f.input), "root\r") })
	f.guest("Password: ")
	readUntil(t, nc, "Password: ")
	m.Close() // the VM stopped: the page's connection ends
	if _, err := io.ReadAll(nc); err != nil && !errors.Is(err, io.EOF) {
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Errorf("end: %v", err)
		}
	}
	f.waitFor("the socket let go", func() bool { return f.conn == nil })
}

func TestListenLoopbackOnly(t *testing.T) {
	s := New(Options{Host: &fakeHost{}})
	if _, err := s.URL("web1", false); err == nil {
		t.Error("URL before Listen")
	}
	if _, err := s.Listen(70000); err == nil {
		t.Error("port 70000 accepted")
	}
	ln, err := s.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if a := ln.Addr().(*net.TCPAddr); !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port == 0 {
		t.Errorf("listens on %s, want 127.0.0.1:PORT", a)
	}
	// Every other address of this machine: nothing answers on the port.
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		ip, _, _ := net.ParseCIDR(a.String())
		if ip == nil || ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.IsLinkLocalUnicast() {
			continue
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), fmt.Sprint(s.Port())), time.Second); err == nil {
			c.Close()
			t.Errorf("the console answers on %s", ip)
		}
	}
}

// TestCodesAreBounded: unused codes of one VM stay bounded (each `fvm display`
// mints one) and expire; the newest always works.
func TestCodesAreBounded(t *testing.T) {
	a := newAccess()
	now := time.Now()
	var last string
	for range 3 * maxCodes {
		last = a.newCode(now)
	}
	if len(a.codes) > maxCodes {
		t.Fatalf("%d unused codes kept, want at most %d", len(a.codes), maxCodes)
	}
	a.newCode(now.Add(codeTTL + time.Second)) // the others expired meanwhile
	if len(a.codes) != 1 {
		t.Fatalf("%d codes after the others expired, want 1", len(a.codes))
	}
	if a.redeem(last, now) {
		t.Fatal("an expired-and-dropped code was redeemed")
	}
}
