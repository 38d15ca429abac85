package daemon

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/vm"
)

// fakeSerialPort is a hypervisor's serial port: a socket server for one
// client at a time, and a log of the guest's output.
type fakeSerialPort struct {
	ln   net.Listener
	log  string
	mu   sync.Mutex
	conn net.Conn
	in   bytes.Buffer
}

func newFakeSerialPort(socket, log string) *fakeSerialPort {
	p := &fakeSerialPort{log: log}
	os.WriteFile(log, []byte("[ 0.0] Linux version 6.1\r\nweb1 login: "), 0o644)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		panic(err)
	}
	p.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conn = c
			p.mu.Unlock()
			buf := make([]byte, 256)
			for {
				n, err := c.Read(buf)
				p.mu.Lock()
				p.in.Write(buf[:n])
				p.mu.Unlock()
				if err != nil {
					break
				}
			}
			c.Close()
		}
	}()
	return p
}

func (p *fakeSerialPort) guest(s string) {
	p.mu.Lock()
	if p.conn != nil {
		p.conn.Write([]byte(s))
	}
	p.mu.Unlock()
	f, _ := os.OpenFile(p.log, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(s)
	f.Close()
}

func (p *fakeSerialPort) input() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.in.String()
}

func (p *fakeSerialPort) close() {
	p.ln.Close()
	p.mu.Lock()
	if p.conn != nil {
		p.conn.Close()
	}
	p.mu.Unlock()
}

// Screenshot makes every fake machine a driver.Screenshotter: 2x1, red and white.
func (m *fakeMachine) Screenshot(context.Context) (image.Image, error) {
	img := image.NewRGBA(image.Rect(0, 0, 2, 1))
	img.Set(0, 0, color.RGBA{0xff, 0, 0, 0xff})
	img.Set(1, 0, color.White)
	return img, nil
}

var _ driver.Screenshotter = (*fakeMachine)(nil)

func consoleDriver() *fakeDriver {
	d := newFake("fake")
	d.serial = true
	return d
}

// readFor reads r until its output holds want.
func readFor(t *testing.T, r io.Reader, want string) {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var out []byte
		buf := make([]byte, 256)
		for {
			n, err := r.Read(buf)
			out = append(out, buf[:n]...)
			if strings.Contains(string(out), want) || err != nil {
				got <- string(out)
				return
			}
		}
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, want) {
			t.Fatalf("read %q, want %q", s, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out reading %q", want)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestDisplayConsoleScreenshot(t *testing.T) {
	drv := consoleDriver()
	h := startHost(t, drv)
	h.addImage(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("web1"), Start: true}); err != nil {
		t.Fatal(err)
	}

	// The screen: the web console's page, which opens.
	d, err := h.c.Display(ctx, "web1", api.DisplayRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Native || d.State != vm.Running || !strings.HasPrefix(d.URL, "http://127.0.0.1:") || !strings.Contains(d.URL, "/vm/web1/?code=") {
		t.Fatalf("display: %+v", d)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the page: %s", resp.Status)
	}
	// The URL was good once: another client that read it gets nothing.
	if resp, err := http.Get(d.URL); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a second use of the display URL: %v %v, want 403", resp.Status, err)
	}
	if s, err := h.c.Display(ctx, "web1", api.DisplayRequest{Serial: true}); err != nil || !strings.HasSuffix(s.URL, "#serial") || s.URL == d.URL+"#serial" {
		t.Errorf("serial tab: %+v, %v, want a new one-time URL", s, err)
	}

	// Two consoles at once, each with its tail; input from both reaches the guest.
	a, err := h.c.Console(ctx, "web1", 1)
	if err != nil {
		t.Fatal(err)
	}
	readFor(t, a, "web1 login: ")
	b, err := h.c.Console(ctx, "web1", 0)
	if err != nil {
		t.Fatal(err)
	}
	drv.mu.Lock()
	port := drv.running["web1"].serial
	drv.mu.Unlock()
	a.Write([]byte("root\r"))
	b.Write([]byte("more\r"))
	waitUntil(t, "both consoles' input", func() bool {
		return strings.Contains(port.input(), "root\r") && strings.Contains(port.input(), "more\r")
	})
	port.guest("Password: ")
	readFor(t, a, "Password: ")
	readFor(t, b, "Password: ")
	a.Close() // detach: the other stays, the VM runs
	port.guest("still\r\n")
	readFor(t, b, "still")
	if v, _ := h.c.Get(ctx, "web1"); v.State != vm.Running {
		t.Errorf("after a detach: %s", v.State)
	}

	png1, err := h.c.Screenshot(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(png1))
	if err != nil || img.Bounds().Dx() != 2 {
		t.Fatalf("screenshot: %v %v", img, err)
	}

	// The VM stops: the console ends (after the last output); the page still
	// opens and says so; consoles and screenshots are refused clearly.
	port.guest("reboot: Power down\r\n")
	if _, err := h.c.Stop(ctx, "web1", api.StopRequest{}); err != nil {
		t.Fatal(err)
	}
	readFor(t, b, "Power down")
	if _, err := io.ReadAll(b); err != nil {
		t.Errorf("console after the stop: %v, want its end", err)
	}
	if d2, err := h.c.Display(ctx, "web1", api.DisplayRequest{}); err != nil || d2.State != vm.Stopped || !strings.Contains(d2.URL, "/vm/web1/?code=") {
		t.Errorf("display of a stopped VM: %+v, %v", d2, err)
	}
	if _, err := h.c.Console(ctx, "web1", 0); api.CodeOf(err) != api.CodeConflict || !strings.Contains(err.Error(), "fvm start web1") {
		t.Errorf("console of a stopped VM: %v", err)
	}
	if _, err := h.c.Screenshot(ctx, "web1"); api.CodeOf(err) != api.CodeConflict {
		t.Errorf("screenshot of a stopped VM: %v", err)
	}
	if _, err := h.c.Console(ctx, "ghost", 0); !api.IsNotFound(err) {
		t.Errorf("console of no VM: %v", err)
	}

	// A removed VM's link is dead.
	if err := h.c.Remove(ctx, "web1", false); err != nil {
		t.Fatal(err)
	}
	resp, err = (&http.Client{}).Get(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("the link of a removed VM: %s, want 403", resp.Status)
	}
}

func TestDisplayNative(t *testing.T) {
	drv := consoleDriver()
	drv.native = true
	h := startHost(t, drv)
	h.addImage(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("mac1"), Start: true}); err != nil {
		t.Fatal(err)
	}
	d, err := h.c.Display(ctx, "mac1", api.DisplayRequest{})
	if err != nil || !d.Native || d.URL != "" {
		t.Fatalf("display of a native machine: %+v, %v", d, err)
	}
	// Its serial console is still the web console's.
	if s, err := h.c.Display(ctx, "mac1", api.DisplayRequest{Serial: true}); err != nil || s.Native || !strings.HasSuffix(s.URL, "#serial") {
		t.Errorf("serial of a native machine: %+v, %v", s, err)
	}
}

func TestDisplayWithoutConsole(t *testing.T) {
	// No serial socket, no display: clear refusals naming what does work.
	drv := newFake("plain")
	h := startHost(t, drv)
	h.addImage(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("p1"), Start: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Display(ctx, "p1", api.DisplayRequest{}); api.CodeOf(err) != api.CodeUnsupported || !strings.Contains(err.Error(), "fvm console p1") {
		t.Errorf("display without one: %v", err)
	}
	if _, err := h.c.Console(ctx, "p1", 0); api.CodeOf(err) != api.CodeUnsupported || !strings.Contains(err.Error(), "fvm logs -f p1") {
		t.Errorf("console without a serial socket: %v", err)
	}
}

func TestConsolePortBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("FVM_CONSOLE_PORT", strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:"))
	drv := consoleDriver()
	h := startHost(t, drv) // the host serves VMs all the same
	h.addImage(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("web1"), Start: true}); err != nil {
		t.Fatal(err)
	}
	_, err = h.c.Display(ctx, "web1", api.DisplayRequest{})
	if err == nil || !strings.Contains(err.Error(), "console.port") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("display with a busy console.port: %v", err)
	}
	if s, err := h.c.Console(ctx, "web1", 0); err != nil { // `fvm console` needs no web console
		t.Errorf("console without the web console: %v", err)
	} else {
		s.Close()
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Errorf("error type %T", err)
	}
}
