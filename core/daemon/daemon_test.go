package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// fakeDisk is the fake driver's disk file in an instance directory.
const fakeDisk = "fake-disk"

// fakeDriver runs "VMs" as goroutines so the host logic is tested without QEMU.
type fakeDriver struct {
	name      string // "fake" unless set
	caps      driver.Caps
	refuse    string // Validate fails for specs with this image
	mu        sync.Mutex
	running   map[string]*fakeMachine
	calls     []string // "start web1", "delete web1", ...
	failStart bool
	failDisk  bool
	panicDisk bool   // Create panics: a bug in a driver
	native    bool   // its machines have a native display window (driver.DisplayNative)
	mac       string // its VMs' NIC address (Caps.MAC), when set
	serial    bool   // its machines serve a serial port (Caps.SerialAttach) and a VNC display
}

func newFake(name string) *fakeDriver {
	return &fakeDriver{name: name, running: map[string]*fakeMachine{}, caps: driver.Caps{OutlivesHost: true, Screenshot: true, InstallISO: true}}
}

func (f *fakeDriver) Name() string {
	if f.name == "" {
		return "fake"
	}
	return f.name
}
func (f *fakeDriver) Caps(_ context.Context, _ *vm.Spec) driver.Caps {
	c := f.caps
	if f.name == "" { // built as a literal: like QEMU's VMs, they outlive the host
		c = driver.Caps{OutlivesHost: true, Screenshot: true, InstallISO: true}
	}
	c.MAC = f.mac
	if f.serial {
		c.SerialAttach, c.Display = true, driver.DisplayVNC
	}
	if f.native {
		c.Display = driver.DisplayNative
	}
	return c
}
func (f *fakeDriver) OpenLog(inst *store.Instance, name string) (driver.LogFile, error) {
	return os.Open(inst.Path(store.SerialLog))
}
func (f *fakeDriver) Validate(_ context.Context, s *vm.Spec) error {
	if f.refuse != "" && s.Image == f.refuse {
		return fmt.Errorf("vm %q: %w: %s cannot run %s", s.Name, driver.ErrUnsupported, f.Name(), s.Image)
	}
	return nil
}
func (f *fakeDriver) record(call string, inst *store.Instance) {
	f.mu.Lock()
	f.calls = append(f.calls, call+" "+inst.Spec.Name)
	f.mu.Unlock()
}
func (f *fakeDriver) Delete(_ context.Context, inst *store.Instance) error {
	f.record("delete", inst)
	return nil
}
func (f *fakeDriver) Create(_ context.Context, inst *store.Instance, in driver.CreateInput) error {
	f.record("create", inst)
	if err := os.WriteFile(inst.Path(store.SeedFile), in.Seed, 0o600); err != nil {
		return err
	}
	if f.panicDisk {
		panic("fake driver bug")
	}
	if f.failDisk {
		return errors.New("disk full")
	}
	return os.WriteFile(inst.Path(fakeDisk), []byte("base="+inst.Spec.BaseImage), 0o600)
}
func (f *fakeDriver) BasesInUse(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, fakeDisk))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return []string{strings.TrimPrefix(string(b), "base=")}, err
}
func (f *fakeDriver) Start(_ context.Context, inst *store.Instance, _ driver.StartOptions) (driver.Machine, error) {
	f.record("start", inst)
	time.Sleep(50 * time.Millisecond) // widen the window for concurrent starts
	if f.failStart {
		return nil, errors.New("qemu: boom")
	}
	m := &fakeMachine{done: make(chan error, 1), accel: f.Name() + "-accel"}
	if f.serial {
		m.serial = newFakeSerialPort(inst.Path("serial.sock"), inst.Path(store.SerialLog))
		m.vnc = inst.Path("vnc.sock")
	}
	f.mu.Lock()
	f.running[inst.Spec.Name] = m
	f.mu.Unlock()
	if f.native {
		return &nativeMachine{fakeMachine: m}, nil
	}
	return m, nil
}
func (f *fakeDriver) callsFor(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.HasSuffix(c, " "+name) {
			out = append(out, c)
		}
	}
	return out
}
func (f *fakeDriver) Attach(_ context.Context, inst *store.Instance) (driver.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.running[inst.Spec.Name]; m != nil && !m.stopped {
		return m, nil
	}
	return nil, driver.ErrNotRunning
}

type fakeMachine struct {
	mu      sync.Mutex
	done    chan error
	stopped bool
	accel   string
	serial  *fakeSerialPort // the serial port it serves, when its driver declares one
	vnc     string          // where its display would be served, then
}

func (m *fakeMachine) DialSerial(ctx context.Context) (net.Conn, error) {
	if m.serial == nil {
		return nil, errors.New("no serial port")
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", m.serial.ln.Addr().String())
}

func (m *fakeMachine) DialVNC(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", m.vnc)
}

func (m *fakeMachine) Info() driver.MachineInfo {
	return driver.MachineInfo{PID: 4242, Accel: m.accel, Notice: "fake notice", StartedAt: time.Now()}
}

func (m *fakeMachine) State(context.Context) (vm.State, error) { return vm.Running, nil }
func (m *fakeMachine) Shutdown(context.Context) error          { return m.Kill() }
func (m *fakeMachine) Kill() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.stopped {
		m.stopped = true
		if m.serial != nil {
			m.serial.close()
		}
		m.done <- nil
		close(m.done)
	}
	return nil
}
func (m *fakeMachine) Done() <-chan error { return m.done }
func (m *fakeMachine) SSHEndpoint(context.Context) (netip.AddrPort, error) {
	return netip.MustParseAddrPort("127.0.0.1:2222"), nil
}

type host struct {
	d      *Daemon
	layout store.Layout
	drv    *fakeDriver
	c      *client.Client
	stop   func()
}

// startHost serves a daemon with the fake driver on a real Unix socket.
func startHost(t *testing.T, drv *fakeDriver) *host {
	t.Helper()
	return startHostWith(t, Options{Drivers: []driver.Driver{drv}}, drv)
}

// startHostWith serves a daemon with opts (its Layout is set here).
func startHostWith(t *testing.T, opts Options, drv *fakeDriver) *host {
	t.Helper()
	dir, err := os.MkdirTemp("", "fvmd") // short path: sun_path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return startHostIn(t, dir, opts, drv)
}

// startHostIn serves a daemon with opts on the state directory dir.
func startHostIn(t *testing.T, dir string, opts Options, drv *fakeDriver) *host {
	t.Helper()
	t.Setenv("FVM_HOME", dir)
	layout := store.DefaultLayout()
	opts.Layout, opts.Version = layout, "test"
	d := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Serve(ctx) }()
	c := client.New(layout.SocketPath())
	for i := 0; ; i++ {
		if _, err := c.Ping(context.Background(), time.Second); err == nil {
			break
		}
		if i > 200 {
			t.Fatal("host did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h := &host{d: d, layout: layout, drv: drv, c: c}
	h.stop = func() { cancel(); <-errc }
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			h.stop()
		}
	})
	return h
}

func (h *host) addImage(t *testing.T) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "base.raw")
	b := make([]byte, 1<<20)
	b[510], b[511] = 0x55, 0xAA // MBR boot signature: a raw disk with a partition table
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (image.Registry{Layout: h.layout}).ImportFile(context.Background(), src, "tiny", image.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

func newSpec(name string) vm.Spec {
	return vm.Spec{Name: name, Image: "tiny", DiskBytes: 2 << 30}
}

func TestLifecycleOverSocket(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	ctx := context.Background()

	st, _ := os.Stat(h.layout.SocketPath())
	if st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", st.Mode().Perm())
	}

	events := make(chan api.Event, 100)
	ectx, ecancel := context.WithCancel(ctx)
	defer ecancel()
	go h.c.Events(ectx, func(ev api.Event) { events <- ev })
	time.Sleep(50 * time.Millisecond)

	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("web1")}); !api.IsNotFound(err) {
		t.Fatalf("create with missing image: %v, want not_found", err)
	}
	if h.layoutHasVM("web1") {
		t.Fatal("failed create left a VM dir")
	}
	h.addImage(t)
	v, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("web1")})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != vm.Stopped || v.Spec.Arch != vm.AMD64 || v.Spec.CPUs != vm.Defaults.CPUs || v.Spec.BaseImage == "" {
		t.Fatalf("created %+v", v)
	}
	for _, f := range []string{store.SeedFile, store.HostKeyFile, store.HostKeyPubFile, store.KnownHostsFile, fakeDisk} {
		if _, err := os.Stat(filepath.Join(v.Dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("web1")}); api.CodeOf(err) != api.CodeConflict {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := h.c.SSHInfo(ctx, "web1"); api.CodeOf(err) != api.CodeConflict {
		t.Fatalf("ssh info of stopped vm: %v", err)
	}

	// Two concurrent starts: one wins, the other gets a clear conflict.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = h.c.Start(ctx, "web1") }()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("concurrent starts: %v / %v, want exactly one success", errs[0], errs[1])
	}
	lost := errors.Join(errs...)
	if api.CodeOf(lost) != api.CodeConflict || !(strings.Contains(lost.Error(), "already running") || strings.Contains(lost.Error(), "already starting")) {
		t.Fatalf("losing start said %v", lost)
	}
	info, err := h.c.SSHInfo(ctx, "web1")
	if err != nil || info.Port != 2222 || !strings.HasPrefix(info.HostKey, "ssh-ed25519 ") || info.User != vm.Defaults.User {
		t.Fatalf("ssh info %+v %v", info, err)
	}
	if err := h.c.Remove(ctx, "web1", false); api.CodeOf(err) != api.CodeConflict || !strings.Contains(err.Error(), "rm -f") {
		t.Fatalf("rm of running vm: %v", err)
	}
	list, _ := h.c.List(ctx)
	if len(list) != 1 || list[0].State != vm.Running {
		t.Fatalf("list %+v", list)
	}
	if v, err := h.c.Stop(ctx, "web1", api.StopRequest{TimeoutSeconds: 5}); err != nil || v.State != vm.Stopped {
		t.Fatalf("stop: %+v %v", v.State, err)
	}
	if err := h.c.Remove(ctx, "web1", false); err != nil {
		t.Fatal(err)
	}
	if h.layoutHasVM("web1") {
		t.Fatal("rm left the VM dir")
	}
	if _, err := h.c.Get(ctx, "web1"); !api.IsNotFound(err) {
		t.Fatalf("get after rm: %v", err)
	}
	seen := map[string]bool{}
	timeout := time.After(2 * time.Second)
	for !seen[api.EventVMRemoved] {
		select {
		case ev := <-events:
			seen[ev.Type] = true
		case <-timeout:
			t.Fatalf("events seen %v, want created/state/removed", seen)
		}
	}
	if !seen[api.EventVMCreated] || !seen[api.EventVMState] {
		t.Fatalf("events seen %v", seen)
	}
}

func (h *host) layoutHasVM(name string) bool {
	_, err := os.Stat(h.layout.InstanceDir(name))
	return err == nil
}

func TestFailuresLeaveNothing(t *testing.T) {
	drv := &fakeDriver{running: map[string]*fakeMachine{}, failDisk: true}
	h := startHost(t, drv)
	h.addImage(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("a")}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("create: %v", err)
	}
	if h.layoutHasVM("a") {
		t.Fatal("failed create left a dir")
	}
	drv.failDisk, drv.failStart = false, true
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("b"), Start: true}); err == nil {
		t.Fatal("start should fail")
	}
	v, err := h.c.Get(ctx, "b")
	if err != nil || v.State != vm.Error || !strings.Contains(v.Error, "boom") {
		t.Fatalf("after failed start: %+v %v", v, err)
	}
	bad := newSpec("Bad_Name")
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: bad}); api.CodeOf(err) != api.CodeInvalid {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := h.c.Start(ctx, "ghost"); !api.IsNotFound(err) {
		t.Fatalf("start ghost: %v", err)
	}
}

func TestReadoptAfterHostRestart(t *testing.T) {
	drv := &fakeDriver{running: map[string]*fakeMachine{}}
	h := startHost(t, drv)
	h.addImage(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("keep"), Start: true}); err != nil {
		t.Fatal(err)
	}
	h.stop() // the host goes away; the "VM" keeps running

	d := New(Options{Layout: h.layout, Drivers: []driver.Driver{drv}})
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- d.Serve(sctx) }()
	var v api.VM
	var err error
	for i := 0; i < 200; i++ {
		if v, err = h.c.Get(ctx, "keep"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || v.State != vm.Running {
		t.Fatalf("after restart: %+v %v", v.State, err)
	}
	// A second host on the same state dir is refused, at once: the first serves.
	t0 := time.Now()
	if err := New(Options{Layout: h.layout, Drivers: []driver.Driver{drv}}).Serve(ctx); !errors.Is(err, ErrHostRunning) {
		t.Fatalf("second host: %v", err)
	}
	if el := time.Since(t0); el > 3*time.Second {
		t.Errorf("a second host beside a serving one was refused after %v", el)
	}
	cancel()
	<-errc
}

// TestHostWaitsForAnExitingHost: a host that starts while another holds the
// lock without serving (it is exiting) waits for the lock and serves.
func TestHostWaitsForAnExitingHost(t *testing.T) {
	t.Setenv("FVM_HOME", t.TempDir())
	layout := store.DefaultLayout()
	if err := layout.EnsureRunDir(); err != nil {
		t.Fatal(err)
	}
	held, err := store.TryLock(layout.DaemonLock())
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, func() { held.Unlock() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- New(Options{Layout: layout, Drivers: []driver.Driver{&fakeDriver{running: map[string]*fakeMachine{}}}}).Serve(ctx)
	}()
	c := client.New(layout.SocketPath())
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := c.Ping(ctx, time.Second); err == nil {
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("the host did not wait for the exiting host's lock: %v", err)
		default:
		}
		if time.Now().After(end) {
			t.Fatal("the host did not serve once the lock was free")
		}
	}
	cancel()
	<-errc
}

func TestRefusesBrowsers(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (netConn, error) {
		return dialUnix(ctx, h.layout.SocketPath())
	}}
	for _, hdr := range []map[string]string{{"Origin": "http://evil.example"}, {"Host": "evil.example"}} {
		req, _ := http.NewRequest("GET", "http://fvm/v1/vms", nil)
		for k, v := range hdr {
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
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%v: status %d, want 403", hdr, resp.StatusCode)
		}
	}
}
