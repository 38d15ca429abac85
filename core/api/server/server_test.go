package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// refusing is a Service (and ImageService, SnapshotService) whose every call fails with err.
type refusing struct{ err error }

func (s refusing) Host(context.Context) (api.HostInfo, error)      { return api.HostInfo{}, s.err }
func (s refusing) List(context.Context) ([]api.VM, error)          { return nil, s.err }
func (s refusing) Get(context.Context, string) (api.VM, error)     { return api.VM{}, s.err }
func (s refusing) Images(context.Context) ([]api.Image, error)     { return nil, s.err }
func (s refusing) Suspend(context.Context, string) (api.VM, error) { return api.VM{}, s.err }
func (s refusing) Create(context.Context, api.CreateRequest) (api.VM, error) {
	return api.VM{}, s.err
}
func (s refusing) Start(context.Context, string, api.StartRequest) (api.VM, error) {
	return api.VM{}, s.err
}
func (s refusing) Stop(context.Context, string, api.StopRequest) (api.VM, error) {
	return api.VM{}, s.err
}
func (s refusing) Restart(context.Context, string, api.StopRequest) (api.VM, error) {
	return api.VM{}, s.err
}
func (s refusing) SSHInfo(context.Context, string) (api.SSHInfo, error)   { return api.SSHInfo{}, s.err }
func (s refusing) OpenLog(context.Context, string) (io.ReadCloser, error) { return nil, s.err }
func (s refusing) Display(context.Context, string, api.DisplayRequest) (api.Display, error) {
	return api.Display{}, s.err
}
func (s refusing) Screenshot(context.Context, string) (image.Image, error) { return nil, s.err }
func (s refusing) AttachConsole(context.Context, string, int) (io.ReadWriteCloser, error) {
	return nil, s.err
}
func (s refusing) Subscribe() (<-chan api.Event, func()) { return make(chan api.Event), func() {} }
func (s refusing) PullImage(context.Context, api.PullRequest, func(api.Event)) (api.Image, error) {
	return api.Image{}, s.err
}
func (s refusing) ImportImage(context.Context, api.ImportRequest, func(api.Event)) (api.Image, error) {
	return api.Image{}, s.err
}
func (s refusing) RemoveImage(context.Context, string, vm.Arch) ([]api.Image, error) {
	return nil, s.err
}
func (s refusing) PruneImages(context.Context) (api.PruneResult, error) {
	return api.PruneResult{}, s.err
}
func (s refusing) CheckUpdates(context.Context, api.UpdatesRequest) ([]api.ImageUpdate, error) {
	return nil, s.err
}
func (s refusing) Catalog(context.Context) ([]api.CatalogItem, error) { return nil, s.err }
func (s refusing) Remove(context.Context, string, bool) (api.Removed, error) {
	return api.Removed{}, s.err
}
func (s refusing) CreateSnapshot(context.Context, string, api.SnapshotRequest) (api.Snapshot, error) {
	return api.Snapshot{}, s.err
}
func (s refusing) Snapshots(context.Context, string) ([]api.Snapshot, error) { return nil, s.err }
func (s refusing) RemoveSnapshot(context.Context, string, string) (api.Removed, error) {
	return api.Removed{}, s.err
}
func (s refusing) RestoreSnapshot(context.Context, string, string, api.RestoreRequest) (api.VM, error) {
	return api.VM{}, s.err
}
func (s refusing) Clone(context.Context, string, api.CloneRequest) (api.VM, error) {
	return api.VM{}, s.err
}

// coded is a host's own error type that carries its code (api.Coded).
type coded struct{}

func (coded) Error() string   { return "vm \"x\" is broken" }
func (coded) APICode() string { return api.CodeConflict }

// TestErrorMapping: over every route, an error answers the status of its
// code (an *api.Error, an api.Coded, store.ErrNotFound wrapped), a plain
// error 500, and the body keeps the code and the message on one line.
func TestErrorMapping(t *testing.T) {
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/host", ""}, {"GET", "/v1/vms", ""}, {"POST", "/v1/vms", "{}"}, {"GET", "/v1/vms/x", ""},
		{"DELETE", "/v1/vms/x", ""}, {"POST", "/v1/vms/x/start", ""}, {"POST", "/v1/vms/x/stop", ""},
		{"POST", "/v1/vms/x/restart", ""}, {"POST", "/v1/vms/x/suspend", ""}, {"GET", "/v1/vms/x/ssh", ""},
		{"GET", "/v1/vms/x/logs", ""}, {"POST", "/v1/vms/x/display", ""}, {"GET", "/v1/vms/x/screenshot", ""},
		{"GET", "/v1/images", ""}, {"GET", "/v1/images/catalog", ""}, {"POST", "/v1/images/pull", "{}"},
		{"POST", "/v1/images/import", "{}"}, {"POST", "/v1/images/updates", "{}"}, {"POST", "/v1/images/prune", ""},
		{"DELETE", "/v1/images/x", ""}, {"GET", "/v1/vms/x/snapshots", ""}, {"POST", "/v1/vms/x/snapshots", "{}"},
		{"DELETE", "/v1/vms/x/snapshots/t", ""}, {"POST", "/v1/vms/x/snapshots/t/restore", "{}"}, {"POST", "/v1/vms/x/clone", "{}"},
	}
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{api.Errorf(api.CodeInvalid, "bad\nrequest"), 400, api.CodeInvalid},
		{api.Errorf(api.CodeNotFound, "no such vm"), 404, api.CodeNotFound},
		{fmt.Errorf("vm %q: %w", "x", store.ErrNotFound), 404, api.CodeNotFound},
		{fmt.Errorf("wrapped: %w", coded{}), 409, api.CodeConflict},
		{api.Errorf(api.CodeUnsupported, "cannot here"), 501, api.CodeUnsupported},
		{errors.New("disk full"), 500, api.CodeInternal},
	} {
		srv := httptest.NewServer(Handler(refusing{c.err}))
		for _, r := range routes {
			req, _ := http.NewRequest(r.method, srv.URL+r.path, strings.NewReader(r.body))
			req.Host = api.HostName
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var eb api.ErrorBody
			json.NewDecoder(resp.Body).Decode(&eb)
			resp.Body.Close()
			if resp.StatusCode != c.status || eb.Code != c.code || eb.Error != c.err.Error() {
				t.Errorf("%s %s failing with %q: %d %s %q, want %d %s", r.method, r.path, c.err, resp.StatusCode, eb.Code, eb.Error, c.status, c.code)
			}
		}
		srv.Close()
	}
}
