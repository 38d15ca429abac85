package server

import (
	"context"
	"net/http"

	"github.com/fvmhq/fvm/core/api"
)

// NICService reports a running VM's network interface; core/daemon has it.
type NICService interface {
	NIC(ctx context.Context, name string) (api.NIC, error)
}

func registerNIC(mux *http.ServeMux, s Service) {
	ns, ok := s.(NICService)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/vms/{name}/nic", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(ns.NIC(r.Context(), r.PathValue("name")))
	})
}
