// Package console is the host's web console: a page per VM with its screen
// (noVNC) and its serial port (xterm.js), bridged over WebSocket to the VNC
// socket the hypervisor serves and to the VM's serial multiplexer (Mux, which
// `fvm console` uses too). It listens on 127.0.0.1 only and guards every
// request (auth.go). The host (core/daemon) runs it and tells it about VMs
// through Host; the page's code is embedded from resources/web.
package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
	"github.com/fvmhq/fvm/resources"
)

// Host is what the console asks of the fvm host.
type Host interface {
	// ConsoleTarget says how to reach a VM's screen and serial port now; an
	// api not_found error when there is no such VM.
	ConsoleTarget(ctx context.Context, name string) (Target, error)
}

// Dialer connects to one of a running VM's streams (its screen, its serial
// port), wherever the VM runs: the driver's, through the host.
type Dialer func(ctx context.Context) (net.Conn, error)

// Target is a VM as its console sees it.
type Target struct {
	State vm.State
	// VNC connects to the screen, served as VNC: nil when the VM is not
	// running or shows its screen another way.
	VNC Dialer
	// Serial multiplexes the serial port: nil when the VM is not running or
	// its serial port cannot be attached.
	Serial *Mux
}

// Options configure a Server.
type Options struct {
	Host Host
	Log  *slog.Logger
	// Assets hold console.html and dist/ (default: resources.Web()).
	Assets fs.FS
}

// Server is the web console.
type Server struct {
	opts   Options
	log    *slog.Logger
	assets fs.FS

	mu     sync.Mutex
	access map[string]*access // by VM name
	port   int                // once listening
	now    func() time.Time   // the clock codes expire by (tests move it)
	// tunnels are the ports of clients' own listeners that tunnel to this
	// console from another machine (AllowTunnel): their Host is accepted too.
	tunnels map[int]bool
}

// New returns a console; Listen, then serve Handler on the listener.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Assets == nil {
		o.Assets = resources.Web()
	}
	return &Server{opts: o, log: o.Log, assets: o.Assets, access: map[string]*access{}, now: time.Now}
}

// Listen binds 127.0.0.1:port (port 0: a free one), the only address the
// console ever listens on.
func (s *Server) Listen(port int) (net.Listener, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("web console port %d is out of range: use 1-65535, or 0 for a free one", port)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("web console: %w", err)
	}
	s.mu.Lock()
	s.port = ln.Addr().(*net.TCPAddr).Port
	s.mu.Unlock()
	return ln, nil
}

// Port is the port it listens on, 0 before Listen.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// URL opens the VM's console page (its serial tab with serial) once: its code
// buys the session cookie on first use, within codeTTL, and never again. Each
// call makes a new URL.
func (s *Server) URL(name string, serial bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.port == 0 {
		return "", errors.New("the web console is not listening")
	}
	a := s.access[name]
	if a == nil {
		a = newAccess()
		s.access[name] = a
	}
	u := fmt.Sprintf("http://127.0.0.1:%d%s?%s=%s", s.port, vmPath(name), codeParam, a.newCode(s.now()))
	if serial {
		u += "#serial"
	}
	return u, nil
}

// AllowTunnel accepts requests for 127.0.0.1:port (or localhost:port) as
// well as for the console's own port: a client on another machine listens
// there on its own loopback and tunnels each connection here through the
// host's API (`fvm display` of a remote host), so the browser names its port.
// Host still rules out DNS rebinding (a rebound name is no loopback address),
// and Origin must still be the page's own.
func (s *Server) AllowTunnel(port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tunnels == nil {
		s.tunnels = map[int]bool{}
	}
	s.tunnels[port] = true
}

func (s *Server) tunnelHost(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.tunnels {
		if hostAllowed(host, p) {
			return true
		}
	}
	return false
}

// Forget revokes a VM's codes and cookie: the VM is gone (a new VM of the
// same name gets new ones).
func (s *Server) Forget(name string) {
	s.mu.Lock()
	delete(s.access, name)
	s.mu.Unlock()
}

func (s *Server) accessOf(name string) *access {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access[name]
}

// redeem spends a VM's one-time code and returns the session cookie it buys.
func (s *Server) redeem(name, code string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.access[name]
	if a == nil || !a.redeem(code, s.now()) {
		return "", false
	}
	return a.session, true
}

// Handler serves the console. Every response passes the Host and Origin checks.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /vm/{name}/{$}", s.page)
	mux.HandleFunc("GET /vm/{name}/state", s.authed(s.state))
	mux.HandleFunc("GET /vm/{name}/ws/vnc", s.authed(s.vnc))
	mux.HandleFunc("GET /vm/{name}/ws/serial", s.authed(s.serial))
	dist, err := fs.Sub(s.assets, "dist")
	if err != nil {
		panic(err) // fs.Sub fails only on a bad path
	}
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(dist)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusNotFound, "fvm web console: nothing here; open a VM's console with `fvm display NAME`")
	})
	return s.guard(mux)
}

// guard refuses a foreign Host or Origin before anything is served.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if !hostAllowed(r.Host, s.Port()) && !s.tunnelHost(r.Host) {
			plain(w, http.StatusForbidden, fmt.Sprintf("fvm web console: Host %q refused: open the console as http://127.0.0.1:%d/", r.Host, s.Port()))
			return
		}
		if !originAllowed(r) {
			plain(w, http.StatusForbidden, fmt.Sprintf("fvm web console: requests from %q are refused", r.Header.Get("Origin")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized reports whether the request carries the VM's session cookie.
func (s *Server) authorized(r *http.Request, name string) bool {
	a := s.accessOf(name)
	if a == nil {
		return false
	}
	for _, c := range r.CookiesNamed(cookieName) {
		if equal(c.Value, a.session) {
			return true
		}
	}
	return false
}

func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r, r.PathValue("name")) {
			forbidden(w, r.PathValue("name"))
			return
		}
		h(w, r)
	}
}

func forbidden(w http.ResponseWriter, name string) {
	plain(w, http.StatusForbidden, fmt.Sprintf("fvm web console: this page needs its link: run `fvm display %s` (links end when the fvm host stops)", name))
}

// codeParam names the one-time code in a console URL's query.
const codeParam = "code"

// page trades a valid one-time code for the session cookie (once) and serves the page.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if code := r.URL.Query().Get(codeParam); code != "" {
		session, ok := s.redeem(name, code)
		if !ok {
			plain(w, http.StatusForbidden, fmt.Sprintf("fvm web console: this link was used already or has expired: run `fvm display %s` for a new one", name))
			return
		}
		http.SetCookie(w, sessionCookie(name, session))
		// Off the address bar and out of history; the fragment (#serial) stays.
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, vmPath(name), http.StatusSeeOther)
		return
	}
	if !s.authorized(r, name) {
		forbidden(w, name)
		return
	}
	b, err := fs.ReadFile(s.assets, "console.html")
	if err != nil {
		plain(w, http.StatusInternalServerError, "fvm web console: page missing from this build: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// xterm.js sets inline styles; nothing else is inline. WebSockets go to this host only.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "+
		"img-src 'self' data: blob:; font-src 'self'; connect-src 'self' ws://"+r.Host+"; "+
		"frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	w.Write(b)
}

// State is the answer of GET /vm/NAME/state, which the page polls while it
// has no connection.
type State struct {
	Name    string   `json:"name"`
	State   vm.State `json:"state"`
	Display bool     `json:"display"` // the screen can be connected now
	Serial  bool     `json:"serial"`  // the serial port can be attached now
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	t, err := s.opts.Host.ConsoleTarget(r.Context(), name)
	if err != nil {
		s.hostError(w, name, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(State{Name: name, State: t.State, Display: t.VNC != nil, Serial: t.Serial != nil})
}

func (s *Server) hostError(w http.ResponseWriter, name string, err error) {
	if api.IsNotFound(err) {
		plain(w, http.StatusNotFound, fmt.Sprintf("fvm web console: vm %q does not exist any more", name))
		return
	}
	plain(w, http.StatusInternalServerError, "fvm web console: "+err.Error())
}

// vnc bridges a WebSocket to the VM's VNC socket, byte for byte (noVNC speaks RFB).
func (s *Server) vnc(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	t, err := s.opts.Host.ConsoleTarget(r.Context(), name)
	if err != nil {
		s.hostError(w, name, err)
		return
	}
	if t.VNC == nil {
		plain(w, http.StatusConflict, fmt.Sprintf("fvm web console: vm %q is %s: its screen shows once it runs", name, t.State))
		return
	}
	dctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	conn, err := t.VNC(dctx)
	cancel()
	if err != nil {
		plain(w, http.StatusBadGateway, fmt.Sprintf("fvm web console: vm %q: display: %v", name, err))
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		conn.Close()
		return // Accept has answered
	}
	s.bridge(r.Context(), name, "screen", ws, conn)
}

// serial bridges a WebSocket to a session of the VM's serial port; ?tail=N
// lines of earlier output come first.
func (s *Server) serial(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	tail, err := strconv.Atoi(r.URL.Query().Get("tail"))
	if err != nil {
		tail = 0
	}
	t, err := s.opts.Host.ConsoleTarget(r.Context(), name)
	if err != nil {
		s.hostError(w, name, err)
		return
	}
	if t.Serial == nil {
		plain(w, http.StatusConflict, fmt.Sprintf("fvm web console: vm %q is %s: its serial console opens once it runs", name, t.State))
		return
	}
	sess, err := t.Serial.Attach(tail)
	if err != nil {
		plain(w, http.StatusBadGateway, fmt.Sprintf("fvm web console: vm %q: %v", name, err))
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		sess.Close()
		return
	}
	s.bridge(r.Context(), name, "serial", ws, sess)
}

// bridge copies between the WebSocket (binary messages) and rw until either
// ends or ctx does (the host stops), then closes both, telling the page why.
func (s *Server) bridge(ctx context.Context, name, what string, ws *websocket.Conn, rw io.ReadWriteCloser) {
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	s.log.Info("web console attached", "vm", name, "what", what)
	ended := make(chan string, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the VM's output
		defer wg.Done()
		io.Copy(nc, rw)
		ended <- "vm"
	}()
	go func() { // the browser's input
		defer wg.Done()
		io.Copy(rw, nc)
		ended <- "browser"
	}()
	var who string
	select {
	case who = <-ended:
	case <-ctx.Done():
		who = "host"
	}
	rw.Close()
	switch who {
	case "browser":
		ws.Close(websocket.StatusNormalClosure, "")
	case "vm":
		ws.Close(websocket.StatusGoingAway, "the VM's "+what+" went away")
	default: // the host stops; ctx's end has closed the connection
		ws.CloseNow()
	}
	wg.Wait()
	s.log.Info("web console detached", "vm", name, "what", what, "by", who)
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

func itoa(n int) string { return strconv.Itoa(n) }
