package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// ImageService is what the host offers for images beyond listing them: catalog
// pulls, imports, update checks, removal and pruning. core/daemon implements it;
// a Service without it serves no image routes beyond GET /v1/images.
type ImageService interface {
	// PullImage fetches a catalog image (or, with IfMissing, returns the local or
	// cached one), reporting progress as it goes.
	PullImage(ctx context.Context, req api.PullRequest, progress func(api.Event)) (api.Image, error)
	// ImportImage caches a disk from a file or URL under a name.
	ImportImage(ctx context.Context, req api.ImportRequest, progress func(api.Event)) (api.Image, error)
	// RemoveImage removes a local name or every cached build of a catalog
	// reference (arch "" means all arches). Base disks stay until PruneImages.
	RemoveImage(ctx context.Context, name string, arch vm.Arch) ([]api.Image, error)
	// PruneImages deletes cached bases no image and no VM uses, and leftovers of downloads.
	PruneImages(ctx context.Context) (api.PruneResult, error)
	// CheckUpdates asks upstream, for every cached catalog image, what it offers now.
	CheckUpdates(ctx context.Context, req api.UpdatesRequest) ([]api.ImageUpdate, error)
	// Catalog lists the releases that can be pulled.
	Catalog(ctx context.Context) ([]api.CatalogItem, error)
}

// registerImages adds the image routes when s offers them.
func registerImages(mux *http.ServeMux, s Service) {
	is, ok := s.(ImageService)
	if !ok {
		return
	}
	h := &imageHandler{s: is}
	mux.HandleFunc("GET /v1/images/catalog", h.catalog)
	mux.HandleFunc("POST /v1/images/pull", h.pull)
	mux.HandleFunc("POST /v1/images/import", h.importImage)
	mux.HandleFunc("POST /v1/images/updates", h.updates)
	mux.HandleFunc("POST /v1/images/prune", h.prune)
	mux.HandleFunc("DELETE /v1/images/{name}", h.remove)
	if ws, ok := s.(WarmService); ok {
		mux.HandleFunc("POST /v1/images/warm", func(w http.ResponseWriter, r *http.Request) {
			var req api.WarmRequest
			if !decode(w, r, &req) {
				return
			}
			reply(w)(ws.WarmImage(r.Context(), req))
		})
	}
}

// WarmService makes warm snapshots on demand; core/daemon implements it.
type WarmService interface {
	WarmImage(ctx context.Context, req api.WarmRequest) (api.WarmSnapshot, error)
}

type imageHandler struct{ s ImageService }

func (h *imageHandler) catalog(w http.ResponseWriter, r *http.Request) {
	reply(w)(h.s.Catalog(r.Context()))
}

func (h *imageHandler) prune(w http.ResponseWriter, r *http.Request) {
	reply(w)(h.s.PruneImages(r.Context()))
}

func (h *imageHandler) remove(w http.ResponseWriter, r *http.Request) {
	reply(w)(h.s.RemoveImage(r.Context(), r.PathValue("name"), vm.Arch(r.URL.Query().Get("arch"))))
}

func (h *imageHandler) updates(w http.ResponseWriter, r *http.Request) {
	var req api.UpdatesRequest
	if !decode(w, r, &req) {
		return
	}
	reply(w)(h.s.CheckUpdates(r.Context(), req))
}

func (h *imageHandler) pull(w http.ResponseWriter, r *http.Request) {
	var req api.PullRequest
	if !decode(w, r, &req) {
		return
	}
	progressStream(w, func(progress func(api.Event)) (api.Image, error) {
		return h.s.PullImage(r.Context(), req, progress)
	})
}

func (h *imageHandler) importImage(w http.ResponseWriter, r *http.Request) {
	var req api.ImportRequest
	if !decode(w, r, &req) {
		return
	}
	progressStream(w, func(progress func(api.Event)) (api.Image, error) {
		return h.s.ImportImage(r.Context(), req, progress)
	})
}

// progressStream answers with the api.PullLine NDJSON stream. It starts with the first
// progress event, so work refused at once gets a plain error with its status.
func progressStream(w http.ResponseWriter, run func(progress func(api.Event)) (api.Image, error)) {
	var mu sync.Mutex
	started := false
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(l api.PullLine) {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
		if enc.Encode(l) == nil && fl != nil {
			fl.Flush()
		}
	}
	img, err := run(func(ev api.Event) {
		mu.Lock()
		defer mu.Unlock()
		send(api.PullLine{Progress: &ev})
	})
	mu.Lock()
	defer mu.Unlock()
	switch {
	case err != nil && !started:
		writeError(w, err, 0)
	case err != nil:
		body := errorBody(err)
		send(api.PullLine{Error: &body})
	default:
		send(api.PullLine{Image: &img})
	}
}
