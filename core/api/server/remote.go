package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/stream"
)

// What clients on another machine than the host's need: their files reach
// the host as uploads, and TCP connections reach guest ports and the web
// console through tunnels, so nothing listens beyond 127.0.0.1 on either side.

// TunnelService opens the TCP connections tunnels carry; core/daemon implements it.
type TunnelService interface {
	// DialGuest connects to port on a running VM's loopback, over the SSH
	// connection the host holds to it.
	DialGuest(ctx context.Context, name string, port uint16) (net.Conn, error)
	// DialConsole connects to the host's web console, which from then on
	// also accepts the Host 127.0.0.1:localPort (the client's listener).
	DialConsole(ctx context.Context, localPort int) (net.Conn, error)
}

// UploadService keeps files clients upload; core/daemon implements it.
type UploadService interface {
	// ReceiveUpload stores size bytes of body, named name on the client,
	// and checks them against digest(), the client's SHA-256, once body has
	// ended. Nothing is kept of an upload that fails.
	ReceiveUpload(ctx context.Context, name string, size int64, body io.Reader, digest func() string) (api.Upload, error)
}

func registerRemote(mux *http.ServeMux, s Service) {
	if ts, ok := s.(TunnelService); ok {
		mux.HandleFunc("GET /v1/vms/{name}/tunnel", func(w http.ResponseWriter, r *http.Request) {
			port, err := strconv.ParseUint(r.URL.Query().Get("port"), 10, 16)
			if err != nil || port == 0 {
				writeError(w, api.Errorf(api.CodeInvalid, "tunnel: port %q is no TCP port (1-65535)", r.URL.Query().Get("port")), 0)
				return
			}
			serveTunnel(w, r, func(ctx context.Context) (net.Conn, error) {
				return ts.DialGuest(ctx, r.PathValue("name"), uint16(port))
			})
		})
		mux.HandleFunc("GET /v1/console/tunnel", func(w http.ResponseWriter, r *http.Request) {
			port, err := strconv.ParseUint(r.URL.Query().Get("port"), 10, 16)
			if err != nil || port == 0 {
				writeError(w, api.Errorf(api.CodeInvalid, "console tunnel: port %q is no TCP port (1-65535)", r.URL.Query().Get("port")), 0)
				return
			}
			serveTunnel(w, r, func(ctx context.Context) (net.Conn, error) { return ts.DialConsole(ctx, int(port)) })
		})
	}
	if us, ok := s.(UploadService); ok {
		mux.HandleFunc("POST "+api.UploadsPath, func(w http.ResponseWriter, r *http.Request) {
			size, err := strconv.ParseInt(r.Header.Get(api.UploadSizeHeader), 10, 64)
			if err != nil || size < 0 {
				writeError(w, api.Errorf(api.CodeInvalid, "upload: the %s header must give the file's length", api.UploadSizeHeader), 0)
				return
			}
			reply(w)(us.ReceiveUpload(r.Context(), r.URL.Query().Get("name"), size, r.Body, func() string {
				return r.Trailer.Get(api.UploadDigestHeader)
			}))
		})
	}
}

// serveTunnel connects first (so a refused port is a plain API error with
// its status), then switches the connection to the tunnel's bytes.
func serveTunnel(w http.ResponseWriter, r *http.Request, dial func(context.Context) (net.Conn, error)) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), api.TunnelProtocol) || !headerHas(r.Header, "Connection", "upgrade") {
		writeError(w, api.Errorf(api.CodeInvalid, "a tunnel is a stream: send Connection: Upgrade and Upgrade: %s", api.TunnelProtocol), 0)
		return
	}
	target, err := dial(r.Context())
	if err != nil {
		writeError(w, err, 0)
		return
	}
	rev := w.Header().Get(api.RevisionHeader) // set by guard: the hijacked answer carries it too
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		target.Close()
		writeError(w, fmt.Errorf("tunnel: %w", err), 0)
		return
	}
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s: %s\r\n\r\n", api.TunnelProtocol, api.RevisionHeader, rev)
	if err := brw.Flush(); err != nil {
		target.Close()
		conn.Close()
		return
	}
	stream.Splice(&readerConn{Conn: conn, r: brw.Reader}, target)
}

// readerConn reads the bytes the server had buffered first.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *readerConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
