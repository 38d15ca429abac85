package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/stream"
)

// ExecService runs commands in VMs over the connection the host holds to each,
// and waits for VMs to be ready. core/daemon implements it.
type ExecService interface {
	// Exec starts req in the named VM, waiting (within ctx) for its SSH to answer.
	Exec(ctx context.Context, name string, req api.ExecRequest) (stream.Process, error)
	// Wait returns once the VM is ready as asked (api.WaitSSH, api.WaitCloudInit).
	Wait(ctx context.Context, name string, req api.WaitRequest) (api.WaitResult, error)
	// Ports lists the VM's port forwards, static and automatic.
	Ports(ctx context.Context, name string) ([]api.Port, error)
}

func registerExec(mux *http.ServeMux, s Service) {
	es, ok := s.(ExecService)
	if !ok {
		return
	}
	mux.HandleFunc("POST /v1/vms/{name}/exec", func(w http.ResponseWriter, r *http.Request) { serveExec(w, r, es) })
	mux.HandleFunc("GET /v1/vms/{name}/ports", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(es.Ports(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/vms/{name}/wait", func(w http.ResponseWriter, r *http.Request) {
		var req api.WaitRequest
		if !decode(w, r, &req) {
			return
		}
		reply(w)(es.Wait(r.Context(), r.PathValue("name"), req))
	})
}

// serveExec starts the command, then switches the connection to api/stream's
// frames: errors before the switch are plain API errors with their status.
func serveExec(w http.ResponseWriter, r *http.Request, es ExecService) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), stream.Upgrade) {
		writeError(w, api.Errorf(api.CodeInvalid, "exec needs Upgrade: %s (use the fvm client)", stream.Upgrade), 0)
		return
	}
	var req api.ExecRequest
	if !decode(w, r, &req) {
		return
	}
	p, err := es.Exec(r.Context(), r.PathValue("name"), req)
	if err != nil {
		writeError(w, err, 0)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.Close()
		writeError(w, fmt.Errorf("exec: %w", err), 0)
		return
	}
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", stream.Upgrade)
	if err := brw.Flush(); err != nil {
		p.Close()
		conn.Close()
		return
	}
	stream.Serve(stream.New(conn, brw.Reader), p)
}
