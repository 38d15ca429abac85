package vz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// fakeControlled is a VM as the control server sees it.
type fakeControlled struct {
	mu        sync.Mutex
	state     MachineState
	stops     int
	windows   int
	suspends  int
	failShow  error
	gate      chan struct{} // Suspend waits on it
	snapshots []string
}

func (f *fakeControlled) Hello() Hello {
	return Hello{Name: "web1", Dir: "/vms/web1", PID: 42, Protocol: ControlProtocol}
}

func (f *fakeControlled) State() MachineState { f.mu.Lock(); defer f.mu.Unlock(); return f.state }

func (f *fakeControlled) RequestStop() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	if f.state != StateRunning {
		return errors.New("the guest cannot be asked to stop now")
	}
	f.state = StateStopping
	return nil
}

func (f *fakeControlled) Suspend(ctx context.Context) error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suspends++
	f.state = StatePaused
	return nil
}

func (f *fakeControlled) Snapshot(_ context.Context, dir string, memory bool) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snapshots = append(f.snapshots, fmt.Sprintf("%s memory=%v", dir, memory))
	return 42 * time.Millisecond, nil
}

func (f *fakeControlled) ShowWindow(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.windows++
	if f.failShow != nil {
		return 0, f.failShow
	}
	return 77, nil
}

func serve(t *testing.T, c Controlled) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vzc") // short: sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, ControlSocket)
	ln, err := ListenControl(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ServeControl(ctx, ln, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeControl: %v", err)
		}
	})
	return sock
}

func TestControlProtocol(t *testing.T) {
	f := &fakeControlled{state: StateRunning}
	sock := serve(t, f)
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("control socket %v %v: want mode 0600", st.Mode(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	resp, err := callControl(ctx, sock, OpHello)
	if err != nil || resp.Hello == nil || resp.Hello.Dir != "/vms/web1" || resp.Hello.PID != 42 || resp.State != StateRunning {
		t.Fatalf("hello: %+v %v", resp, err)
	}
	if resp, err := callControl(ctx, sock, OpState); err != nil || resp.State.VMState() != vm.Running {
		t.Fatalf("state: %+v %v", resp, err)
	}
	if resp, err := callControl(ctx, sock, OpStop); err != nil || resp.State != StateStopping {
		t.Fatalf("stop: %+v %v", resp, err)
	}
	// A refusal comes back as the helper's words, with the state.
	_, err = callControl(ctx, sock, OpStop)
	if !errors.Is(err, errHelperSays) || !strings.Contains(err.Error(), "cannot be asked to stop") {
		t.Fatalf("second stop: %v", err)
	}
	if resp, err := callControl(ctx, sock, OpShowWindow); err != nil || resp.Window != 77 {
		t.Fatalf("show-window: %+v %v", resp, err)
	}
	f.mu.Lock()
	f.failShow = errors.New("display unavailable: no window server")
	f.mu.Unlock()
	if _, err := callControl(ctx, sock, OpShowWindow); err == nil || !strings.Contains(err.Error(), "no window server") {
		t.Fatalf("failed show: %v", err)
	}
	if _, err := callControl(ctx, sock, "reboot"); err == nil || !strings.Contains(err.Error(), `unknown operation "reboot"`) {
		t.Fatalf("unknown op: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.windows != 2 || f.stops != 2 {
		t.Errorf("windows %d stops %d", f.windows, f.stops)
	}
}

// A long suspend does not block other requests; a client that gives up gets
// its context's error, and the server stays healthy.
func TestControlConcurrentAndGarbage(t *testing.T) {
	f := &fakeControlled{state: StateRunning, gate: make(chan struct{})}
	sock := serve(t, f)
	ctx := context.Background()

	suspended := make(chan error)
	go func() {
		_, err := callControl(ctx, sock, OpSuspend)
		suspended <- err
	}()
	time.Sleep(50 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if resp, err := callControl(sctx, sock, OpState); err != nil || resp.State != StateRunning {
		t.Fatalf("state during a suspend: %+v %v", resp, err)
	}
	cancel()
	close(f.gate)
	if err := <-suspended; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	n := f.suspends
	f.mu.Unlock()
	if n != 1 || f.State() != StatePaused {
		t.Fatalf("suspends %d state %s", n, f.State())
	}

	// Garbage and oversized requests get an error or a closed connection, never a hang.
	for _, req := range []string{"not json\n", strings.Repeat("x", 10000)} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(req))
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		c.Close()
		if n > 0 && !strings.Contains(string(buf[:n]), `"ok":false`) {
			t.Errorf("answer to %.20q: %s", req, buf[:n])
		}
	}
	// A client whose context ends stops waiting.
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	cctx, ccancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer ccancel()
	if _, err := callControl(cctx, sock, OpSuspend); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("gave-up client: %v", err)
	}
	close(gate)
	if _, err := callControl(ctx, sock, OpHello); err != nil {
		t.Fatal(err)
	}
}

func TestControlSocketPathLimit(t *testing.T) {
	long := "/tmp/" + strings.Repeat("d", 100) + "/vz.sock"
	if _, err := ListenControl(long); err == nil || !strings.Contains(err.Error(), "shorter directory") {
		t.Fatalf("long path: %v", err)
	}
}

func TestMachineStates(t *testing.T) {
	for s, want := range map[MachineState]vm.State{
		StateRunning: vm.Running, StatePaused: vm.Running, StateSaving: vm.Running, StatePausing: vm.Running,
		StateResuming: vm.Running, StateStarting: vm.Starting, StateRestoring: vm.Starting,
		StateStopping: vm.Stopping, StateStopped: vm.Stopped, StateError: vm.Error,
	} {
		if got := s.VMState(); got != want {
			t.Errorf("%s → %s, want %s", s, got, want)
		}
	}
}

// FuzzControlRequest: whatever a client sends, the server answers one JSON
// line (or closes) and never panics.
func FuzzControlRequest(f *testing.F) {
	for _, seed := range []string{`{"op":"hello"}` + "\n", `{"op":"suspend"}`, "{", "\n", `{"op":1}` + "\n", `[]` + "\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer server.Close()
			serveOne(context.Background(), server, &fakeControlled{state: StateRunning})
		}()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		go func() { client.Write(req); client.Write([]byte("\n")) }()
		buf := make([]byte, 4096)
		n, _ := client.Read(buf)
		client.Close()
		<-done
		if n > 0 {
			var resp ControlResponse
			if err := json.Unmarshal(buf[:n], &resp); err != nil {
				t.Fatalf("answer %q is not JSON: %v", buf[:n], err)
			}
		}
	})
}

// TestControlSnapshot: the snapshot request carries its directory (absolute
// only) and whether the memory goes too; the answer, the pause.
func TestControlSnapshot(t *testing.T) {
	f := &fakeControlled{state: StateRunning}
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := ListenControl(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeControl(ctx, ln, f)
	r, err := callControlReq(ctx, sock, ControlRequest{Op: OpSnapshot, Dir: "/vms/web1/snapshots/t1", Memory: true})
	if err != nil || r.PauseMS != 42 {
		t.Fatalf("snapshot: %+v %v", r, err)
	}
	if _, err := callControlReq(ctx, sock, ControlRequest{Op: OpSnapshot, Dir: "relative"}); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("a relative directory: %v", err)
	}
	if len(f.snapshots) != 1 || f.snapshots[0] != "/vms/web1/snapshots/t1 memory=true" {
		t.Fatalf("snapshots %v", f.snapshots)
	}
}

// TestControlSocketOfADeepDirectory: a VM directory too deep for a socket
// address gets its control socket through the run dir's short alias, and the
// helper's listener there is reached by the host.
func TestControlSocketOfADeepDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("u", 40), "Application Support", "fvm", "vms", strings.Repeat("n", 32))
	os.MkdirAll(dir, 0o700)
	store.SetSocketAliasDir(filepath.Join(t.TempDir(), "run", store.SocketAliasDirName))
	defer store.SetSocketAliasDir("")
	p := pathsOf(dir)
	if len(p.sock) > store.MaxSocketPath || filepath.Dir(p.sock) == dir {
		t.Fatalf("control socket %s (%d bytes) is not a short alias", p.sock, len(p.sock))
	}
	ln, err := ListenControl(p.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if st, err := os.Stat(filepath.Join(dir, ControlSocket)); err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket in the VM directory: %v %v", st, err)
	}
}

// TestPlanControlSocketOfADeepDirectory: the plan names the control socket
// the helper binds, so it is the short alias too.
func TestPlanControlSocketOfADeepDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("u", 40), "Application Support", "fvm", "vms", strings.Repeat("n", 32))
	os.MkdirAll(dir, 0o700)
	store.SetSocketAliasDir(filepath.Join(t.TempDir(), "run", store.SocketAliasDirName))
	defer store.SetSocketAliasDir("")
	s := baseSpec()
	p, err := BuildPlan(PlanInput{Spec: s, Dir: dir, HostArch: vm.ARM64, Limits: appleSilicon, SSHPort: 2222, Seed: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Control.Socket != pathsOf(dir).sock || len(p.Control.Socket) > store.MaxSocketPath {
		t.Errorf("plan's control socket %s, driver's %s", p.Control.Socket, pathsOf(dir).sock)
	}
}
