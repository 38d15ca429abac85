package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/fvmhq/fvm/core/api"
)

// console serves GET /v1/vms/{name}/console: an HTTP upgrade (as `docker
// attach` does) after which the connection carries the serial console's
// bytes both ways, until the client closes it (detach), the VM stops or the
// host does.
func (h *handler) console(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), api.ConsoleProtocol) || !headerHas(r.Header, "Connection", "upgrade") {
		writeError(w, api.Errorf(api.CodeInvalid, "the console is a stream: send Connection: Upgrade and Upgrade: %s", api.ConsoleProtocol), 0)
		return
	}
	tail, err := strconv.Atoi(r.URL.Query().Get("tail"))
	if err != nil {
		tail = 0
	}
	stream, err := h.s.AttachConsole(r.Context(), r.PathValue("name"), tail)
	if err != nil {
		writeError(w, err, 0)
		return
	}
	defer stream.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, fmt.Errorf("the connection cannot be upgraded"), http.StatusInternalServerError)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", api.ConsoleProtocol)
	if buf.Flush() != nil {
		return
	}
	stop := context.AfterFunc(r.Context(), func() { conn.Close() }) // the host stops
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the guest's output; ends when the VM stops, or when the stream is closed below
		defer wg.Done()
		io.Copy(conn, stream)
		conn.Close()
	}()
	io.Copy(stream, buf) // the client's input (bytes it sent with the request are in buf)
	stream.Close()       // the client detached
	wg.Wait()
}

// headerHas reports whether a comma-separated header has token (case-insensitive).
func headerHas(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
