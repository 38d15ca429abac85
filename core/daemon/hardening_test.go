package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// usable checks that the host still answers ls and that name is free again.
func (h *host) usable(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	list, err := h.c.List(ctx)
	if err != nil {
		t.Fatalf("ls after the failure: %v", err)
	}
	for _, v := range list {
		if v.Spec.Name == name {
			t.Fatalf("ls shows %s after its create failed: %+v", name, v)
		}
	}
	if err := h.c.Remove(ctx, name, true); !api.IsNotFound(err) {
		t.Fatalf("rm %s after its create failed: %v, want not_found", name, err)
	}
	ents, _ := os.ReadDir(h.layout.VMsDir())
	for _, e := range ents {
		t.Errorf("left in vms/: %s", e.Name())
	}
}

// TestCreateFailureAndPanicLeaveUsableHost: a driver whose Create fails, or
// panics, fails that request only: the answer says why (no "cannot reach"),
// ls and rm work, nothing is left and the name can be used again.
func TestCreateFailureAndPanicLeaveUsableHost(t *testing.T) {
	drv := &fakeDriver{running: map[string]*fakeMachine{}, failDisk: true}
	var logs bytes.Buffer
	h := startHostWith(t, Options{Drivers: []driver.Driver{drv}, Log: slog.New(slog.NewTextHandler(&logs, nil))}, drv)
	h.addImage(t)
	ctx := context.Background()

	_, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("a")})
	var he *client.HostError
	if err == nil || !strings.Contains(err.Error(), "disk full") || errors.As(err, &he) {
		t.Fatalf("create with a failing driver: %v", err)
	}
	h.usable(t, "a")

	drv.failDisk, drv.panicDisk = false, true
	_, err = h.c.Create(ctx, api.CreateRequest{Spec: newSpec("a")})
	if api.CodeOf(err) != api.CodeInternal || !strings.HasPrefix(err.Error(), "the host failed: internal error in POST /v1/vms: fake driver bug") {
		t.Fatalf("create with a panicking driver: %v", err)
	}
	if !strings.Contains(logs.String(), "handler panicked") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("the host log lacks the panic's stack:\n%s", logs.String())
	}
	h.usable(t, "a") // the slot was released: no "busy creating"

	drv.panicDisk = false
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("a")}); err != nil {
		t.Fatalf("create after the failures: %v", err)
	}
}

// TestBrokenVMListedAndRemovable: a VM whose spec is torn or missing shows in
// ls with its reason (and in JSON), Get says broken, rm removes it.
func TestBrokenVMListedAndRemovable(t *testing.T) {
	drv := &fakeDriver{running: map[string]*fakeMachine{}}
	h := startHost(t, drv)
	h.addImage(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("good")}); err != nil {
		t.Fatal(err)
	}
	torn := h.layout.InstanceDir("torn")
	os.MkdirAll(torn, 0o700)
	os.WriteFile(filepath.Join(torn, store.SpecFile), []byte(`{"name": "to`), 0o600)
	os.MkdirAll(h.layout.InstanceDir("empty"), 0o700)

	list, err := h.c.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("ls = %+v, %v", list, err)
	}
	for _, v := range list {
		switch v.Spec.Name {
		case "good":
			if v.Broken != "" {
				t.Errorf("good is broken: %s", v.Broken)
			}
		case "torn", "empty":
			if v.State != vm.Broken || !strings.Contains(v.Broken, "fvm rm "+v.Spec.Name) {
				t.Errorf("%s: %+v", v.Spec.Name, v)
			}
		}
	}
	if v, err := h.c.Get(ctx, "torn"); err != nil || v.State != vm.Broken {
		t.Fatalf("get torn: %+v %v", v, err)
	}
	if _, err := h.c.Start(ctx, "torn"); api.CodeOf(err) != api.CodeConflict || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("start of a broken VM: %v", err)
	}
	for _, n := range []string{"torn", "empty"} {
		if err := h.c.Remove(ctx, n, false); err != nil {
			t.Fatalf("rm %s: %v", n, err)
		}
		if h.layoutHasVM(n) {
			t.Fatalf("rm left %s", n)
		}
	}
	if got := drv.callsFor("torn"); len(got) != 1 || got[0] != "delete torn" {
		t.Errorf("the driver was not asked to delete the broken VM: %v", got)
	}
}

// TestHostCleansStaleTemporaries: what a killed host left half-made (a VM
// directory being built, an import's temporary) is gone when the next starts;
// a temporary someone still writes (locked) stays.
func TestHostCleansStaleTemporaries(t *testing.T) {
	dir, _ := os.MkdirTemp("", "fvmd")
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Setenv("FVM_HOME", dir)
	l := store.DefaultLayout()
	half := filepath.Join(l.VMsDir(), ".creating-web-123")
	os.MkdirAll(half, 0o700)
	os.WriteFile(filepath.Join(half, store.SpecFile), []byte("{}"), 0o600)
	os.MkdirAll(l.BasesDir(), 0o755)
	stale := filepath.Join(l.BasesDir(), ".import-1")
	os.WriteFile(stale, []byte("half a disk"), 0o444)
	busy, _ := os.Create(filepath.Join(l.BasesDir(), ".import-2"))
	defer busy.Close()
	if err := store.LockOpen(busy); err != nil {
		t.Fatal(err)
	}
	drv := &fakeDriver{running: map[string]*fakeMachine{}}
	startHostIn(t, dir, Options{Drivers: []driver.Driver{drv}}, drv)
	for _, p := range []string{half, stale} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the host's start", p)
		}
	}
	if _, err := os.Stat(busy.Name()); err != nil {
		t.Errorf("a temporary being written was removed: %v", err)
	}
}

// TestVersionMismatch: a CLI talking to a host of another API revision (an
// older fvm left running) is told exactly what to do.
func TestVersionMismatch(t *testing.T) {
	dir, _ := os.MkdirTemp("", "fvmv")
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "fvm.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	old := http.NewServeMux() // a host from before the handshake: no revision header
	old.HandleFunc("GET /v1/host", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"version":"v0.9.0","pid":4321}`))
	})
	old.HandleFunc("POST /v1/vms", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		w.Write([]byte(`{"error":"bad request body: json: unknown field \"backend\"","code":"invalid"}`))
	})
	srv := &http.Server{Handler: old}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := client.New(sock)
	c.Version = "v1.0.0"
	_, err = c.Create(context.Background(), api.CreateRequest{Spec: newSpec("x")})
	var ve *client.VersionError
	if !errors.As(err, &ve) {
		t.Fatalf("create on an old host: %v, want a VersionError", err)
	}
	msg := err.Error()
	for _, want := range []string{"the running fvm host is an older fvm (v0.9.0), API revision 0", "this fvm (v1.0.0)", "kill 4321", "re-adopted"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "unknown field") {
		t.Errorf("message shows the old host's confusion: %q", msg)
	}
}

// TestHostGoneMidRequest: a host that takes a request and dies before
// answering is reported as failed, not as unreachable.
func TestHostGoneMidRequest(t *testing.T) {
	dir, _ := os.MkdirTemp("", "fvmg")
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "fvm.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			conn.Read(buf) // the request arrives; the "host" dies
			conn.Close()
		}
	}()
	_, err = client.New(sock).List(context.Background())
	var hf *client.HostFailedError
	if !errors.As(err, &hf) || !strings.Contains(err.Error(), "the host failed while answering GET /v1/vms") {
		t.Fatalf("err = %v, want a HostFailedError", err)
	}
	os.Remove(sock)
	_, err = client.New(sock).List(context.Background())
	var he *client.HostError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("no host: %v", err)
	}
}
