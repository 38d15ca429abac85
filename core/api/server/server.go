// Package server serves the fvm API over HTTP on a Unix socket. It only
// translates HTTP to Service calls; the host's logic lives in core/daemon.
package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
)

// Service is what the host offers; core/daemon implements it.
type Service interface {
	Host(ctx context.Context) (api.HostInfo, error)
	List(ctx context.Context) ([]api.VM, error)
	Get(ctx context.Context, name string) (api.VM, error)
	Create(ctx context.Context, req api.CreateRequest) (api.VM, error)
	Start(ctx context.Context, name string, req api.StartRequest) (api.VM, error)
	Stop(ctx context.Context, name string, req api.StopRequest) (api.VM, error)
	Restart(ctx context.Context, name string, req api.StopRequest) (api.VM, error)
	// Remove deletes a VM and says what it kept of what the VM read (disk
	// layers other VMs read), and why.
	Remove(ctx context.Context, name string, force bool) (api.Removed, error)
	// Suspend saves a running VM's state into its directory and ends it.
	Suspend(ctx context.Context, name string) (api.VM, error)
	SSHInfo(ctx context.Context, name string) (api.SSHInfo, error)
	// OpenLog opens a VM's serial console log (an error wrapping
	// fs.ErrNotExist when the VM never ran).
	OpenLog(ctx context.Context, name string) (io.ReadCloser, error)
	// Display shows a VM's screen in its own window, or answers the web console's URL.
	Display(ctx context.Context, name string, req api.DisplayRequest) (api.Display, error)
	// Screenshot captures a running VM's screen.
	Screenshot(ctx context.Context, name string) (image.Image, error)
	// AttachConsole attaches to a running VM's serial console (tail lines of
	// earlier output first); closing it detaches.
	AttachConsole(ctx context.Context, name string, tail int) (io.ReadWriteCloser, error)
	Images(ctx context.Context) ([]api.Image, error)
	// Subscribe streams events until cancel is called.
	Subscribe() (events <-chan api.Event, cancel func())
}

// Options configure the handler.
type Options struct {
	// Log receives the stack of a handler that panicked (default: discarded).
	Log *slog.Logger
	// Version is the host's fvm version, sent with the API revision.
	Version string
}

// Handler returns the API's HTTP handler.
func Handler(s Service, opts ...Options) http.Handler {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	mux := http.NewServeMux()
	h := &handler{s: s}
	mux.HandleFunc("GET /v1/host", h.host)
	mux.HandleFunc("GET /v1/vms", h.list)
	mux.HandleFunc("POST /v1/vms", h.create)
	mux.HandleFunc("GET /v1/vms/{name}", h.get)
	mux.HandleFunc("DELETE /v1/vms/{name}", h.remove)
	mux.HandleFunc("POST /v1/vms/{name}/start", h.start)
	mux.HandleFunc("POST /v1/vms/{name}/stop", h.stop)
	mux.HandleFunc("POST /v1/vms/{name}/restart", h.restart)
	mux.HandleFunc("POST /v1/vms/{name}/suspend", h.suspend)
	mux.HandleFunc("GET /v1/vms/{name}/ssh", h.ssh)
	mux.HandleFunc("GET /v1/vms/{name}/logs", h.logs)
	mux.HandleFunc("POST /v1/vms/{name}/display", h.display)
	mux.HandleFunc("GET /v1/vms/{name}/screenshot", h.screenshot)
	mux.HandleFunc("GET /v1/vms/{name}/console", h.console) // console.go
	mux.HandleFunc("GET /v1/images", h.images)
	mux.HandleFunc("GET /v1/events", h.events)
	registerImages(mux, s)    // pull, import, updates, rm, prune, catalog (images.go)
	registerExec(mux, s)      // exec streams and readiness waits (exec.go)
	registerNIC(mux, s)       // a running VM's network interface (nic.go)
	registerRemote(mux, s)    // uploads and tunnels, for clients on other machines (remote.go)
	registerSnapshots(mux, s) // snapshots and clones (snapshots.go)
	return guard(recoverPanics(mux, o.Log), o.Version)
}

// recoverPanics turns a panic in a handler into a 500 with a message (or, in
// the middle of a stream, a cut connection) and logs its stack, so one bug
// fails one request instead of the host.
func recoverPanics(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil || v == http.ErrAbortHandler {
				if v != nil {
					panic(v)
				}
				return
			}
			log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if rw.wrote {
				panic(http.ErrAbortHandler) // the client sees the stream end without a result
			}
			writeError(w, api.Errorf(api.CodeInternal, "the host failed: internal error in %s %s: %v (the stack is in the host's log)", r.Method, r.URL.Path, v), 0)
		}()
		next.ServeHTTP(rw, r)
	})
}

// trackingWriter remembers whether a response has started.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) { t.wrote = true; t.ResponseWriter.WriteHeader(code) }
func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (exec upgrades it).
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// Hijack hands the connection over (an upgraded exec stream): the response has started.
func (t *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := t.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	t.wrote = true
	return h.Hijack()
}

func (t *trackingWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		t.wrote = true
		f.Flush()
	}
}

// guard refuses what a browser could send: any Origin header, or a Host other than
// the ones our clients use (DNS rebinding), as tailscale's LocalAPI does.
// Every response carries the API revision (the version handshake: api.Revision).
func guard(next http.Handler, version string) http.Handler {
	rev := strconv.Itoa(api.Revision)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.RevisionHeader, rev)
		if version != "" {
			w.Header().Set("Fvm-Version", version)
		}
		if r.Header.Get("Origin") != "" {
			writeError(w, api.Errorf("forbidden", "requests from browsers are refused"), http.StatusForbidden)
			return
		}
		switch r.Host {
		case api.HostName, "localhost", "":
		default:
			writeError(w, api.Errorf("forbidden", "unexpected Host %q", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type handler struct{ s Service }

// hostBriefer is a Service that can say who it is without asking its
// backends (?brief=1: what a client's liveness check needs). A backend's
// check can take long (a libvirtd probing QEMU on its first start answers
// nothing for minutes), and a host that does not answer its ping is one
// the CLI tries to replace.
type hostBriefer interface {
	HostBrief(ctx context.Context) (api.HostInfo, error)
}

func (h *handler) host(w http.ResponseWriter, r *http.Request) {
	if b, ok := h.s.(hostBriefer); ok && r.URL.Query().Get("brief") != "" {
		reply(w)(b.HostBrief(r.Context()))
		return
	}
	reply(w)(h.s.Host(r.Context()))
}
func (h *handler) list(w http.ResponseWriter, r *http.Request) { reply(w)(h.s.List(r.Context())) }
func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	reply(w)(h.s.Get(r.Context(), r.PathValue("name")))
}
func (h *handler) images(w http.ResponseWriter, r *http.Request) { reply(w)(h.s.Images(r.Context())) }
func (h *handler) ssh(w http.ResponseWriter, r *http.Request) {
	reply(w)(h.s.SSHInfo(r.Context(), r.PathValue("name")))
}

func (h *handler) display(w http.ResponseWriter, r *http.Request) {
	var req api.DisplayRequest
	if !decode(w, r, &req) {
		return
	}
	reply(w)(h.s.Display(r.Context(), r.PathValue("name"), req))
}

// screenshot answers image/png.
func (h *handler) screenshot(w http.ResponseWriter, r *http.Request) {
	img, err := h.s.Screenshot(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, err, 0)
		return
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		writeError(w, err, 0)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Write(b.Bytes())
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	var req api.CreateRequest
	if !decode(w, r, &req) {
		return
	}
	reply(w)(h.s.Create(r.Context(), req))
}

func (h *handler) start(w http.ResponseWriter, r *http.Request) {
	var req api.StartRequest
	if !decode(w, r, &req) {
		return
	}
	reply(w)(h.s.Start(r.Context(), r.PathValue("name"), req))
}

func (h *handler) suspend(w http.ResponseWriter, r *http.Request) {
	reply(w)(h.s.Suspend(r.Context(), r.PathValue("name")))
}

func (h *handler) stop(w http.ResponseWriter, r *http.Request) {
	var req api.StopRequest
	if !decode(w, r, &req) {
		return
	}
	reply(w)(h.s.Stop(r.Context(), r.PathValue("name"), req))
}

func (h *handler) restart(w http.ResponseWriter, r *http.Request) {
	var req api.StopRequest
	if !decode(w, r, &req) {
		return
	}
	reply(w)(h.s.Restart(r.Context(), r.PathValue("name"), req))
}

func (h *handler) remove(w http.ResponseWriter, r *http.Request) {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	reply(w)(h.s.Remove(r.Context(), r.PathValue("name"), force))
}

// logs streams the serial log; with follow=true it keeps sending appended bytes
// until the client goes away.
func (h *handler) logs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f, err := h.s.OpenLog(r.Context(), name)
	follow, _ := strconv.ParseBool(r.URL.Query().Get("follow"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		writeError(w, err, 0)
		return
	}
	if err != nil && !follow {
		w.WriteHeader(http.StatusOK) // never booted: empty log
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	for {
		if f == nil {
			f, _ = h.s.OpenLog(r.Context(), name)
		}
		if f != nil {
			if _, err := io.Copy(w, f); err != nil {
				break
			}
		}
		if !follow {
			break
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	if f != nil {
		f.Close()
	}
}

// events streams NDJSON, one api.Event per line, until the client disconnects.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	ch, cancel := h.s.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if enc.Encode(ev) != nil || bw.Flush() != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, api.Errorf(api.CodeInvalid, "bad request body: %v", err), 0)
		return false
	}
	return true
}

// reply writes a value as JSON or an error with its mapped status.
func reply(w http.ResponseWriter) func(any, error) {
	return func(v any, err error) {
		if err != nil {
			writeError(w, err, 0)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
}

// writeError is the one error writer: the body (errorBody) with its status,
// or status when it is not 0.
func writeError(w http.ResponseWriter, err error, status int) {
	body := errorBody(err)
	if status == 0 {
		status = api.HTTPStatus(body.Code)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// errorBody is the one mapping of an error to its API body: the code of an
// api error in its chain, not_found for a missing VM, else internal.
func errorBody(err error) api.ErrorBody {
	code := api.CodeOf(err)
	if code == "" && errors.Is(err, store.ErrNotFound) {
		code = api.CodeNotFound
	}
	if code == "" {
		code = api.CodeInternal
	}
	return api.ErrorBody{Error: err.Error(), Code: code}
}
