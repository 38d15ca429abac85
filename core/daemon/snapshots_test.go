package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/snapshot"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
	"github.com/fvmhq/fvm/core/warm"
)

// snapDriver is the fake driver with snapshots: a "layer" is a file in the
// layers dir, a disk (fakeDisk) names the layer it reads, a snapshot
// directory holds a disk naming its layer and, with memory, a state file.
type snapDriver struct {
	*fakeDriver
	layers string
	mu     sync.Mutex
	starts []driver.StartOptions
	freed  func() // the host's driver.LayerWatcher callback
	fp     string // WarmFingerprint's answer when set (fakeFP otherwise): another QEMU
	// crashes is how many restores of a clone the fake guest's kernel
	// survives not: each writes a panic to the serial log.
	crashes int
	// coldAfterRevert makes a clone's restore after a Revert fail, as a
	// driver that boots cold instead does.
	coldAfterRevert bool
	revertErr       error // what Revert fails with, when set
}

const fakeState = "fake-state"

var fakeFP = strings.Repeat("f", 64)

const fakeSavedMAC = "52:54:00:00:00:99"

func newSnapDriver() *snapDriver { return &snapDriver{fakeDriver: newFake("fake")} }

func (s *snapDriver) Caps(ctx context.Context, spec *vm.Spec) driver.Caps {
	c := s.fakeDriver.Caps(ctx, spec)
	c.Snapshots, c.SaveState, c.WarmClone, c.Shares = true, true, true, true
	if _, err := os.Stat(filepath.Join(spec.Warm, fakeState)); spec.Warm != "" && err == nil {
		c.MAC = fakeSavedMAC // as qemu does: a clone's NIC is the one in its origin's memory
	}
	if len(spec.Mounts) > 0 {
		c.Off(driver.CapSaveState, "its shared folders are attached")
		c.Off(driver.CapWarmClone, "VMs with shared folders boot cold")
	}
	return c
}

// newLayer freezes the VM's disk: a new layer with its content.
func (s *snapDriver) newLayer(inst *store.Instance) (string, error) {
	os.MkdirAll(s.layers, 0o700)
	b := make([]byte, 6)
	rand.Read(b)
	l := filepath.Join(s.layers, hex.EncodeToString(b)+".qcow2")
	old, _ := os.ReadFile(inst.Path(fakeDisk))
	if err := os.WriteFile(l, old, 0o400); err != nil {
		return "", err
	}
	return l, os.WriteFile(inst.Path(fakeDisk), []byte("base="+l), 0o600)
}

func (s *snapDriver) Snapshot(_ context.Context, inst *store.Instance, dir string) (driver.SnapshotResult, error) {
	l, err := s.newLayer(inst)
	if err != nil {
		return driver.SnapshotResult{}, err
	}
	return driver.SnapshotResult{}, os.WriteFile(filepath.Join(dir, fakeDisk), []byte("base="+l), 0o600)
}

func (s *snapDriver) Revert(_ context.Context, inst *store.Instance, dir string) error {
	s.record("revert", inst)
	if s.revertErr != nil {
		return s.revertErr
	}
	b, err := os.ReadFile(filepath.Join(dir, fakeDisk))
	if err != nil {
		return err
	}
	return os.WriteFile(inst.Path(fakeDisk), b, 0o600)
}

func (s *snapDriver) PruneLayers(used func() (map[string]bool, error)) ([]string, int64, error) {
	if s.layers == "" {
		return nil, 0, errors.New("no layers dir")
	}
	u, err := used()
	if err != nil {
		return nil, 0, err
	}
	ls, _ := filepath.Glob(filepath.Join(s.layers, "*"))
	var out []string
	for _, l := range ls {
		if !u[l] {
			os.Remove(l)
			out = append(out, l)
		}
	}
	return out, 0, nil
}

// BasesInUse: the disk's, the snapshots' and the origin's.
func (s *snapDriver) BasesInUse(dir string) ([]string, error) {
	var out []string
	files, _ := filepath.Glob(filepath.Join(dir, store.SnapshotsDir, "*", fakeDisk))
	for _, f := range append(files, filepath.Join(dir, fakeDisk), filepath.Join(dir, store.OriginDir, fakeDisk)) {
		for i := 0; i < 10; i++ { // down the chain: a layer holds the disk it froze, "base=..."
			b, err := os.ReadFile(f)
			if err != nil || !strings.HasPrefix(string(b), "base=") {
				break
			}
			f = strings.TrimPrefix(string(b), "base=")
			out = append(out, f)
		}
	}
	return out, nil
}

func (s *snapDriver) Create(ctx context.Context, inst *store.Instance, in driver.CreateInput) error {
	if in.Clone == "" {
		return s.fakeDriver.Create(ctx, inst, in)
	}
	s.record("clone-create", inst)
	os.WriteFile(inst.Path(store.SeedFile), in.Seed, 0o600)
	b, err := os.ReadFile(filepath.Join(in.Clone, fakeDisk))
	if err != nil {
		return err
	}
	return os.WriteFile(inst.Path(fakeDisk), b, 0o600)
}

func (s *snapDriver) Start(ctx context.Context, inst *store.Instance, opts driver.StartOptions) (driver.Machine, error) {
	s.mu.Lock()
	s.starts = append(s.starts, opts)
	s.mu.Unlock()
	m, err := s.fakeDriver.Start(ctx, inst, opts)
	if err != nil {
		return nil, err
	}
	boot := driver.BootCold
	switch {
	case opts.Clone != "" && opts.Restore:
		boot = driver.BootRestored
	case opts.Clone != "":
		boot = driver.BootClone
		s.fakeDriver.mu.Lock()
		reverted := slices.Contains(s.calls, "revert "+inst.Spec.Name)
		s.fakeDriver.mu.Unlock()
		if s.coldAfterRevert && reverted {
			boot = driver.BootCold
		}
		s.mu.Lock()
		if s.crashes > 0 {
			s.crashes--
			f, _ := os.OpenFile(inst.Path(store.SerialLog), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
			fmt.Fprintf(f, "[  114.617806] Kernel panic - not syncing: Fatal exception\r\n[  117.640823] Rebooting in 5 seconds..\r\n")
			f.Close()
		}
		s.mu.Unlock()
	}
	return &snapMachine{fakeMachine: m.(*fakeMachine), d: s, inst: inst, boot: boot}, nil
}

func (s *snapDriver) Attach(ctx context.Context, inst *store.Instance) (driver.Machine, error) {
	m, err := s.fakeDriver.Attach(ctx, inst)
	if err != nil {
		return nil, err
	}
	return &snapMachine{fakeMachine: m.(*fakeMachine), d: s, inst: inst}, nil
}

func (s *snapDriver) WarmFingerprint(context.Context, *vm.Spec) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fp != "" {
		return s.fp, nil
	}
	return fakeFP, nil
}
func (s *snapDriver) FreezeSnapshot(*store.Instance) (string, error) { return fakeFP, nil }
func (s *snapDriver) HasSavedState(inst *store.Instance) bool {
	_, err := os.Stat(inst.Path(fakeState))
	return err == nil
}
func (s *snapDriver) DiscardState(inst *store.Instance) error { return os.Remove(inst.Path(fakeState)) }

type snapMachine struct {
	*fakeMachine
	d    *snapDriver
	inst *store.Instance
	boot string
}

func (m *snapMachine) Info() driver.MachineInfo {
	i := m.fakeMachine.Info()
	i.Boot = m.boot
	return i
}

func (m *snapMachine) Suspend(context.Context) error { return errors.New("not in this test") }

// SSHEndpoint: a restored clone's guest has none (re-identification fails at once).
func (m *snapMachine) SSHEndpoint(ctx context.Context) (netip.AddrPort, error) {
	if m.boot == driver.BootClone {
		return netip.AddrPort{}, errors.New("no guest")
	}
	return m.fakeMachine.SSHEndpoint(ctx)
}

func (m *snapMachine) Snapshot(_ context.Context, dir string, memory bool) (driver.SnapshotResult, error) {
	l, err := m.d.newLayer(m.inst)
	if err != nil {
		return driver.SnapshotResult{}, err
	}
	res := driver.SnapshotResult{Pause: 42 * time.Millisecond}
	if memory {
		os.WriteFile(filepath.Join(dir, fakeState), []byte("memory of "+m.inst.Spec.Name), 0o600)
		res.Memory, res.Fingerprint = true, fakeFP
	}
	return res, os.WriteFile(filepath.Join(dir, fakeDisk), []byte("base="+l), 0o600)
}

func snapHost(t *testing.T) (*host, *snapDriver) {
	t.Helper()
	drv := newSnapDriver()
	dir, err := os.MkdirTemp("", "fvmd") // short path: sun_path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	drv.layers = filepath.Join(dir, "data", "layers") // store.DefaultLayout under FVM_HOME=dir
	h := startHostIn(t, dir, Options{Drivers: []driver.Driver{drv}}, drv.fakeDriver)
	if h.layout.LayersDir() != drv.layers {
		t.Fatalf("layers dir %s, want %s", h.layout.LayersDir(), drv.layers)
	}
	h.addImage(t)
	return h, drv
}

// TestSnapshotsOverSocket: take, list, refuse, restore and remove snapshots.
func TestSnapshotsOverSocket(t *testing.T) {
	h, drv := snapHost(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("web1"), Start: true}); err != nil {
		t.Fatal(err)
	}
	s, err := h.c.CreateSnapshot(ctx, "web1", "t1")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Memory || s.PauseSeconds != 0.042 || s.Tag != "t1" || s.Notice != "" {
		t.Fatalf("snapshot of a running VM: %+v", s)
	}
	info, _ := snapshot.Load(s.Dir)
	pub, _ := os.ReadFile(filepath.Join(h.layout.InstanceDir("web1"), store.HostKeyPubFile))
	if info.Hostname != "web1" || info.HostKeyPublic != strings.TrimSpace(string(pub)) || info.InstanceID == "" || info.Fingerprint != fakeFP {
		t.Fatalf("snapshot.json: %+v", info)
	}
	if _, err := h.c.CreateSnapshot(ctx, "web1", "t1"); api.CodeOf(err) != api.CodeConflict {
		t.Fatalf("a second t1: %v", err)
	}
	if _, err := h.c.CreateSnapshot(ctx, "web1", "../x"); api.CodeOf(err) != api.CodeInvalid {
		t.Fatalf("a bad tag: %v", err)
	}
	def, err := h.c.CreateSnapshot(ctx, "web1", "")
	if err != nil || len(def.Tag) != len("20260102-150405") {
		t.Fatalf("a default tag: %+v %v", def, err)
	}
	list, err := h.c.Snapshots(ctx, "web1")
	if err != nil || len(list) != 2 || list[0].Tag != "t1" {
		t.Fatalf("ls: %+v %v", list, err)
	}

	if _, err := h.c.RestoreSnapshot(ctx, "web1", "t1", false); api.CodeOf(err) != api.CodeConflict || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("restore of a running VM without force: %v", err)
	}
	v, err := h.c.RestoreSnapshot(ctx, "web1", "t1", true)
	if err != nil {
		t.Fatal(err)
	}
	last := drv.starts[len(drv.starts)-1]
	if v.State != vm.Running || last.Clone != s.Dir || !last.Restore || !strings.Contains(v.Notice, "discarded") {
		t.Fatalf("restore: %+v, started with %+v", v, last)
	}
	if _, err := h.c.RestoreSnapshot(ctx, "web1", "nope", true); !api.IsNotFound(err) || !strings.Contains(err.Error(), "fvm snapshot ls web1") {
		t.Fatalf("restore of a missing tag: %v", err)
	}
	if _, err := h.c.RemoveSnapshot(ctx, "web1", "t1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := h.c.Snapshots(ctx, "web1"); len(list) != 1 {
		t.Fatalf("after rm: %+v", list)
	}
}

// TestSnapshotWithShares: a VM with shares gets a disk-only snapshot, with why.
func TestSnapshotWithShares(t *testing.T) {
	h, _ := snapHost(t)
	ctx := context.Background()
	spec := newSpec("shared")
	spec.Mounts = []vm.Mount{{HostPath: t.TempDir(), GuestPath: "/src"}}
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: spec, Start: true}); err != nil {
		t.Fatal(err)
	}
	s, err := h.c.CreateSnapshot(ctx, "shared", "a")
	if err != nil {
		t.Fatal(err)
	}
	if s.Memory || !strings.Contains(s.Notice, "disk only") || !strings.Contains(s.Notice, "shared folders") {
		t.Fatalf("a VM with shares: %+v", s)
	}
	v, err := h.c.Clone(ctx, "shared", api.CloneRequest{Name: "shared2"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.Notice, "boots cold") || v.State != vm.Running {
		t.Fatalf("a clone of a VM with shares: %+v", v)
	}
}

// TestCloneOverSocket: a clone of a running VM (an implicit snapshot) and of
// a tag; both start from their own origin; rm of the parent keeps the
// layers the clones read and says so; rm of the clones frees them.
func TestCloneOverSocket(t *testing.T) {
	h, drv := snapHost(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("web1"), Start: true}); err != nil {
		t.Fatal(err)
	}
	v, err := h.c.Clone(ctx, "web1", api.CloneRequest{Name: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	origin := filepath.Join(h.layout.InstanceDir("c1"), store.OriginDir)
	if v.Spec.Warm != origin || v.Spec.CPUs == 0 {
		t.Fatalf("clone spec %+v", v.Spec)
	}
	var cloneStart driver.StartOptions
	for _, o := range drv.starts {
		if o.Clone == origin {
			cloneStart = o
		}
	}
	if cloneStart.Clone == "" || cloneStart.Restore {
		t.Fatalf("the clone's first start did not restore its origin: %+v", drv.starts)
	}
	// The fake guest has no SSH: re-identification fails and it boots cold, saying why.
	if !strings.Contains(v.Notice, "re-identified") {
		t.Errorf("clone notice %q", v.Notice)
	}
	info, err := warm.Load(origin)
	if err != nil || info.Hostname != "web1" || info.DiskOnly {
		t.Fatalf("origin %+v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(origin, fakeState)); !os.IsNotExist(err) {
		t.Errorf("the origin's memory stayed after the clone's first start: %v", err)
	}

	// Two forks at once: the second queues behind the first's snapshot.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range []string{"f1", "f2"} {
		wg.Go(func() { _, errs[i] = h.c.Clone(ctx, "web1", api.CloneRequest{Name: n, NoStart: true}) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("two clones at once: %v", err)
	}
	h.c.RemoveVM(ctx, "f1", true)
	h.c.RemoveVM(ctx, "f2", true)

	if _, err := h.c.CreateSnapshot(ctx, "web1", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Clone(ctx, "web1", api.CloneRequest{Tag: "base", Name: "c2", NoStart: true}); err != nil {
		t.Fatal(err)
	}
	// Its seed names the NIC the driver gives it with its origin in place.
	if seed, err := os.ReadFile(filepath.Join(h.layout.InstanceDir("c2"), store.SeedFile)); err != nil || !strings.Contains(string(seed), fakeSavedMAC) {
		t.Errorf("the seed of a clone of a snapshot with memory does not name its NIC %s (%v)", fakeSavedMAC, err)
	}
	if _, err := h.c.Clone(ctx, "web1", api.CloneRequest{Tag: "base", Name: "c2"}); api.CodeOf(err) != api.CodeConflict {
		t.Fatalf("a second c2: %v", err)
	}
	if _, err := h.c.Clone(ctx, "web1", api.CloneRequest{Tag: "gone"}); !api.IsNotFound(err) {
		t.Fatalf("clone of a missing tag: %v", err)
	}

	r, err := h.c.RemoveVM(ctx, "web1", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kept) == 0 || !strings.Contains(strings.Join(r.Kept, "; "), "c1") || !strings.Contains(strings.Join(r.Kept, "; "), "c2") {
		t.Fatalf("rm of the parent kept %v", r.Kept)
	}
	for _, n := range []string{"c1", "c2"} {
		used, _ := drv.BasesInUse(h.layout.InstanceDir(n))
		for _, f := range used {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("%s reads %s, which is gone: %v", n, f, err)
			}
		}
	}
	h.c.RemoveVM(ctx, "c1", true)
	h.c.RemoveVM(ctx, "c2", true)
	if left, _ := filepath.Glob(filepath.Join(h.layout.LayersDir(), "*")); len(left) != 0 {
		t.Fatalf("layers left when nothing reads them: %v", left)
	}
}

func (s *snapDriver) WatchLayers(freed func()) {
	s.mu.Lock()
	s.freed = freed
	s.mu.Unlock()
}

// TestFlattenedLayersPruned: once a driver says a flattening ended, the
// layers nothing reads go at once, and a clone being made (its directory
// not yet in place) keeps the layer its origin reads.
func TestFlattenedLayersPruned(t *testing.T) {
	h, drv := snapHost(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("web1"), Start: true}); err != nil {
		t.Fatal(err)
	}
	inst := &store.Instance{Dir: h.layout.InstanceDir("web1")}
	flat, err := drv.newLayer(inst)
	if err != nil {
		t.Fatal(err)
	}
	making := filepath.Join(h.layout.VMsDir(), ".creating-c1-123")
	os.MkdirAll(filepath.Join(making, store.OriginDir), 0o700)
	held := filepath.Join(drv.layers, "0123456789ab.qcow2") // another VM's frozen disk
	os.WriteFile(held, []byte("frozen"), 0o400)
	os.WriteFile(filepath.Join(making, store.OriginDir, fakeDisk), []byte("base="+held), 0o600)
	os.WriteFile(inst.Path(fakeDisk), []byte("flat"), 0o600) // its layer streamed into the top
	drv.mu.Lock()
	freed := drv.freed
	drv.mu.Unlock()
	if freed == nil {
		t.Fatal("the host did not watch the driver's layers")
	}
	freed()
	for end := time.Now().Add(5 * time.Second); isFile(flat) && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if isFile(flat) {
		t.Errorf("the flattened layer %s stayed", flat)
	}
	if !isFile(held) {
		t.Errorf("the layer of a clone being made went: %s", held)
	}
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
