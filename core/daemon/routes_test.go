package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// TestRefusalCodesMatchTheirCauses runs one refused request per cause over
// every route of the real API on a real host: a request that is wrong answers
// 400 (invalid), a thing that does not exist 404, a thing in the wrong state
// 409, what this host cannot do 501, a browser 403, never 500 and never a
// code of another cause. Streams (pull, import) refused at once answer with
// the status too.
func TestRefusalCodesMatchTheirCauses(t *testing.T) {
	drv := &fakeDriver{running: map[string]*fakeMachine{}}
	h := startHost(t, drv)
	h.addImage(t)
	ctx := context.Background()
	for _, n := range []string{"running", "stopped"} {
		if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec(n), Start: n == "running"}); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(h.layout.InstanceDir("broken"), 0o700) // no spec
	notDisk := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notDisk, []byte("not a disk"), 0o600)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (netConn, error) {
		return dialUnix(ctx, h.layout.SocketPath())
	}}
	consoleUpgrade := map[string]string{"Connection": "Upgrade", "Upgrade": "fvm-console"}
	execUpgrade := map[string]string{"Connection": "Upgrade", "Upgrade": "fvm-exec/1"}
	spec := func(edit func(*vm.Spec)) api.CreateRequest {
		s := newSpec("new1")
		edit(&s)
		return api.CreateRequest{Spec: s}
	}

	for _, c := range []struct {
		cause, method, path string
		body                any // JSON, or a string sent as is
		hdr                 map[string]string
		status              int
		code                string
	}{
		// Create
		{"a create with no image", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Image = "" }), nil, 400, api.CodeInvalid},
		{"a create of an unknown image", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Image = "ghost" }), nil, 404, api.CodeNotFound},
		{"a create with an invalid name", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Name = "Bad_Name" }), nil, 400, api.CodeInvalid},
		{"a create of a taken name", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Name = "stopped" }), nil, 409, api.CodeConflict},
		{"a create of a broken VM's name", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Name = "broken" }), nil, 409, api.CodeConflict},
		{"a create with a tiny disk", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.DiskBytes = 1 << 20 }), nil, 400, api.CodeInvalid},
		{"a create with a disk over the limit", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.DiskBytes = vm.MaxDiskBytes + 1 }), nil, 400, api.CodeInvalid},
		{"a create with an unknown backend", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Backend = "hyperv" }), nil, 400, api.CodeInvalid},
		{"a create with a relative image path", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Image = "./disk.img" }), nil, 400, api.CodeInvalid},
		{"a create from a file that is no disk", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Image = notDisk }), nil, 400, api.CodeInvalid},
		{"a create from a missing file", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Image = "/nonexistent/disk.img" }), nil, 400, api.CodeInvalid},
		{"a create with a relative ISO", "POST", "/v1/vms", spec(func(s *vm.Spec) { s.Image, s.ISO = "", "x.iso" }), nil, 400, api.CodeInvalid},
		{"a body that is no JSON", "POST", "/v1/vms", "{not json", nil, 400, api.CodeInvalid},
		{"a body with an unknown field", "POST", "/v1/vms", `{"spec":{},"bogus":1}`, nil, 400, api.CodeInvalid},
		// One VM
		{"an unknown VM", "GET", "/v1/vms/ghost", nil, nil, 404, api.CodeNotFound},
		{"an invalid VM name", "GET", "/v1/vms/Bad_Name", nil, nil, 400, api.CodeInvalid},
		{"rm of an unknown VM", "DELETE", "/v1/vms/ghost", nil, nil, 404, api.CodeNotFound},
		{"rm of a running VM without force", "DELETE", "/v1/vms/running", nil, nil, 409, api.CodeConflict},
		{"start of an unknown VM", "POST", "/v1/vms/ghost/start", nil, nil, 404, api.CodeNotFound},
		{"start of a running VM", "POST", "/v1/vms/running/start", nil, nil, 409, api.CodeConflict},
		{"start of a broken VM", "POST", "/v1/vms/broken/start", nil, nil, 409, api.CodeConflict},
		{"stop of an unknown VM", "POST", "/v1/vms/ghost/stop", nil, nil, 404, api.CodeNotFound},
		{"restart of a broken VM", "POST", "/v1/vms/broken/restart", nil, nil, 409, api.CodeConflict},
		{"suspend of a stopped VM", "POST", "/v1/vms/stopped/suspend", nil, nil, 409, api.CodeConflict},
		{"ssh of a stopped VM", "GET", "/v1/vms/stopped/ssh", nil, nil, 409, api.CodeConflict},
		{"ssh of an unknown VM", "GET", "/v1/vms/ghost/ssh", nil, nil, 404, api.CodeNotFound},
		{"logs of an unknown VM", "GET", "/v1/vms/ghost/logs", nil, nil, 404, api.CodeNotFound},
		{"display of an unknown VM", "POST", "/v1/vms/ghost/display", nil, nil, 404, api.CodeNotFound},
		{"screenshot of a stopped VM", "GET", "/v1/vms/stopped/screenshot", nil, nil, 409, api.CodeConflict},
		{"console of a stopped VM", "GET", "/v1/vms/stopped/console", nil, consoleUpgrade, 409, api.CodeConflict},
		{"console of an unknown VM", "GET", "/v1/vms/ghost/console", nil, consoleUpgrade, 404, api.CodeNotFound},
		{"a console that is no stream", "GET", "/v1/vms/running/console", nil, nil, 400, api.CodeInvalid},
		{"exec in an unknown VM", "POST", "/v1/vms/ghost/exec", api.ExecRequest{Command: "true"}, execUpgrade, 404, api.CodeNotFound},
		{"exec in a stopped VM", "POST", "/v1/vms/stopped/exec", api.ExecRequest{Command: "true"}, execUpgrade, 409, api.CodeConflict},
		{"an exec that is no stream", "POST", "/v1/vms/running/exec", api.ExecRequest{Command: "true"}, nil, 400, api.CodeInvalid},
		{"ports of an unknown VM", "GET", "/v1/vms/ghost/ports", nil, nil, 404, api.CodeNotFound},
		{"a wait for something unknown", "POST", "/v1/vms/running/wait", api.WaitRequest{For: "godot"}, nil, 400, api.CodeInvalid},
		{"a wait on an unknown VM", "POST", "/v1/vms/ghost/wait", api.WaitRequest{For: api.WaitSSH}, nil, 404, api.CodeNotFound},
		// Images
		{"a pull of an unknown image", "POST", "/v1/images/pull", api.PullRequest{Ref: "plan9"}, nil, 404, api.CodeNotFound},
		{"a pull for an unknown arch", "POST", "/v1/images/pull", api.PullRequest{Ref: "debian", Arch: "sparc"}, nil, 400, api.CodeInvalid},
		{"a pull of a local image", "POST", "/v1/images/pull", api.PullRequest{Ref: "tiny"}, nil, 400, api.CodeInvalid},
		{"an import of a relative path", "POST", "/v1/images/import", api.ImportRequest{Source: "disk.img", Name: "x"}, nil, 400, api.CodeInvalid},
		{"an import of a missing file", "POST", "/v1/images/import", api.ImportRequest{Source: "/nonexistent.img", Name: "x"}, nil, 400, api.CodeInvalid},
		{"an import of a file that is no disk", "POST", "/v1/images/import", api.ImportRequest{Source: notDisk, Name: "x"}, nil, 400, api.CodeInvalid},
		{"an import under an invalid name", "POST", "/v1/images/import", api.ImportRequest{Source: notDisk, Name: "Bad Name"}, nil, 400, api.CodeInvalid},
		{"an import of a URL without a checksum", "POST", "/v1/images/import", api.ImportRequest{Source: "http://127.0.0.1:1/x.img", Name: "x"}, nil, 400, api.CodeInvalid},
		{"an import with a bad checksum", "POST", "/v1/images/import", api.ImportRequest{Source: notDisk, Name: "x", Checksum: "md5:00"}, nil, 400, api.CodeInvalid},
		{"rm of an unknown image", "DELETE", "/v1/images/ghost", nil, nil, 404, api.CodeNotFound},
		// The guard and the router
		{"a browser's Origin", "GET", "/v1/vms", nil, map[string]string{"Origin": "http://evil.example"}, 403, "forbidden"},
		{"a foreign Host", "GET", "/v1/vms", nil, map[string]string{"Host": "evil.example"}, 403, "forbidden"},
		{"an unknown route", "GET", "/v1/nothing", nil, nil, 404, ""},
		{"a wrong method", "PUT", "/v1/vms", nil, nil, 405, ""},
	} {
		t.Run(c.cause, func(t *testing.T) {
			var body *strings.Reader
			switch b := c.body.(type) {
			case nil:
				body = strings.NewReader("")
			case string:
				body = strings.NewReader(b)
			default:
				j, _ := json.Marshal(b)
				body = strings.NewReader(string(j))
			}
			req, _ := http.NewRequest(c.method, "http://"+api.HostName+c.path, body)
			for k, v := range c.hdr {
				if k == "Host" {
					req.Host = v
				} else {
					req.Header.Set(k, v)
				}
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb api.ErrorBody
			if ct := resp.Header.Get("Content-Type"); strings.Contains(ct, "ndjson") && resp.StatusCode == 200 {
				// A stream that started: its last line says how it ended.
				var last api.PullLine
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					json.Unmarshal(sc.Bytes(), &last)
				}
				if last.Error != nil {
					eb = *last.Error
				}
				t.Errorf("%s: a stream started before it was refused (%q): want the refusal as the answer's status", c.cause, eb.Error)
			} else {
				json.NewDecoder(resp.Body).Decode(&eb)
			}
			if resp.StatusCode != c.status || c.code != "" && eb.Code != c.code || strings.Contains(eb.Error, "\n") {
				t.Errorf("%s: %d %s %q, want %d %s", c.cause, resp.StatusCode, eb.Code, eb.Error, c.status, c.code)
			}
		})
	}
	// Nothing of the refused creates was made.
	ents, _ := os.ReadDir(h.layout.VMsDir())
	if len(ents) != 3 {
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("vms/ holds %v after the refusals, want broken, running and stopped", names)
	}
	if _, err := os.Stat(filepath.Join(h.layout.InstanceDir("broken"), store.SpecFile)); err == nil {
		t.Error("a refused create wrote into the broken VM's directory")
	}
}
