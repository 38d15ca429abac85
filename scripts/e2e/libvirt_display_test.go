//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// vncGreets opens the VM's screen through the host's web console (the VNC
// bridge, fed by the driver's DialVNC) and checks the VNC server's greeting.
func vncGreets(t *testing.T, name string) {
	t.Helper()
	pageURL := strings.TrimSpace(mustFVM(t, "display", "--print-url", name))
	u, err := url.Parse(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := hc.Get(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("console page: %d", resp.StatusCode)
	}
	hdr := http.Header{"Origin": {"http://" + u.Host}}
	for _, ck := range jar.Cookies(u) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+u.Host+u.Path+"ws/vnc", &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("VNC WebSocket: %v", err)
	}
	defer conn.CloseNow()
	_, msg, err := conn.Read(ctx)
	if err != nil || !bytes.HasPrefix(msg, []byte("RFB ")) {
		t.Fatalf("the VM's VNC greets with %q (%v), want RFB", msg, err)
	}
}
