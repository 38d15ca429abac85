package server

import (
	"context"
	"net/http"

	"github.com/fvmhq/fvm/core/api"
)

// SnapshotService is what the host offers for named snapshots and clones;
// core/daemon implements it.
type SnapshotService interface {
	// CreateSnapshot takes a snapshot of a VM (its memory too when it runs and can).
	CreateSnapshot(ctx context.Context, name string, req api.SnapshotRequest) (api.Snapshot, error)
	// Snapshots lists a VM's snapshots, oldest first.
	Snapshots(ctx context.Context, name string) ([]api.Snapshot, error)
	// RemoveSnapshot deletes a snapshot and says what it kept of its disk, and why.
	RemoveSnapshot(ctx context.Context, name, tag string) (api.Removed, error)
	// RestoreSnapshot brings a VM back to a snapshot, discarding what it did since.
	RestoreSnapshot(ctx context.Context, name, tag string, req api.RestoreRequest) (api.VM, error)
	// Clone makes (and starts) a new VM from a VM's snapshot, or one taken now.
	Clone(ctx context.Context, src string, req api.CloneRequest) (api.VM, error)
}

// registerSnapshots adds the snapshot and clone routes when s offers them.
func registerSnapshots(mux *http.ServeMux, s Service) {
	ss, ok := s.(SnapshotService)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/vms/{name}/snapshots", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(ss.Snapshots(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/vms/{name}/snapshots", func(w http.ResponseWriter, r *http.Request) {
		var req api.SnapshotRequest
		if decode(w, r, &req) {
			reply(w)(ss.CreateSnapshot(r.Context(), r.PathValue("name"), req))
		}
	})
	mux.HandleFunc("DELETE /v1/vms/{name}/snapshots/{tag}", func(w http.ResponseWriter, r *http.Request) {
		reply(w)(ss.RemoveSnapshot(r.Context(), r.PathValue("name"), r.PathValue("tag")))
	})
	mux.HandleFunc("POST /v1/vms/{name}/snapshots/{tag}/restore", func(w http.ResponseWriter, r *http.Request) {
		var req api.RestoreRequest
		if decode(w, r, &req) {
			reply(w)(ss.RestoreSnapshot(r.Context(), r.PathValue("name"), r.PathValue("tag"), req))
		}
	})
	mux.HandleFunc("POST /v1/vms/{name}/clone", func(w http.ResponseWriter, r *http.Request) {
		var req api.CloneRequest
		if decode(w, r, &req) {
			reply(w)(ss.Clone(r.Context(), r.PathValue("name"), req))
		}
	})
}
