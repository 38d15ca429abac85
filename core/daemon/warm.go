package daemon

// Warm snapshots and clones. After a VM of an image boots cold, the host makes
// that image's warm snapshot for the VM's shape in the background: a template
// VM booted under a generic identity (hostname fvm-warm, fvm's key only) until
// cloud-init finished, then suspended and frozen by its driver. A later VM of
// the same image and shape is created as a clone (its disk an overlay on the
// snapshot's) and its first start restores the snapshot's memory; before it
// counts as started, the host re-identifies it over the template's SSH key
// (cloudinit.ReidentifyScript): its own host key, hostname, machine id, keys,
// instance id, entropy, clock and disk size. Anything that does not fit boots
// cold, with a notice.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// snapshotFile describes a snapshot directory; a directory counts only with it.
const snapshotFile = "snapshot.json"

// snapshotInfo is snapshot.json: what the host needs to clone from a snapshot.
type snapshotInfo struct {
	Shape         string    `json:"shape"`       // shapeKey of the VMs it serves
	Fingerprint   string    `json:"fingerprint"` // the driver's (driver.Warmer)
	Backend       string    `json:"backend"`
	Image         string    `json:"image"`
	Base          string    `json:"base"` // the cached base under its disk
	Arch          vm.Arch   `json:"arch"`
	CPUs          int       `json:"cpus"`
	MemoryMiB     int       `json:"memoryMiB"`
	User          string    `json:"user"`
	DiskBytes     int64     `json:"diskBytes"`
	HostKeyPublic string    `json:"hostKeyPublic"` // the template's, refused by every clone
	InstanceID    string    `json:"instanceID"`    // the template's cloud-init instance id
	CreatedAt     time.Time `json:"createdAt"`
	BuildSeconds  float64   `json:"buildSeconds"`
}

// shapeKey names the VMs a snapshot can serve: the same base, arch, CPUs,
// memory and user (the user exists in the saved guest).
func shapeKey(s *vm.Spec) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%d\x00%d\x00%s", s.Backend, s.BaseImage, s.Arch, s.CPUs, s.MemoryMiB, s.User)))
	return hex.EncodeToString(h[:12])
}

func snapshotDir(l store.Layout, shape, fingerprint string) string {
	return filepath.Join(l.WarmDir(), shape+"-"+fingerprint[:16])
}

func loadSnapshot(dir string) (snapshotInfo, error) {
	var s snapshotInfo
	err := store.ReadJSON(filepath.Join(dir, snapshotFile), &s)
	return s, err
}

// warmEnabled reads images.warm (default on) from the config file or
// FVM_IMAGES_WARM: whether the host makes snapshots by itself after cold boots.
// Snapshots that exist (`fvm image warm`) serve new VMs either way.
func (d *Daemon) warmEnabled() bool {
	v, err := config.Load(d.opts.Layout)
	if err != nil {
		return true
	}
	if !v.IsSet(config.KeyImagesWarm) {
		return true
	}
	return v.GetBool(config.KeyImagesWarm)
}

// cloneSource picks the snapshot a new VM clones, or "" with why not (a notice
// for the user, "" when there is simply none yet).
func (d *Daemon) cloneSource(ctx context.Context, drv driver.Driver, spec *vm.Spec) (dir, notice string) {
	w, ok := drv.(driver.Warmer)
	if !ok || spec.BaseImage == "" {
		return "", ""
	}
	if len(spec.Mounts) > 0 {
		return "", "VMs with shared folders boot cold: their share devices are not part of a warm snapshot"
	}
	fp, err := w.WarmFingerprint(ctx, spec)
	if err != nil {
		return "", ""
	}
	shape := shapeKey(spec)
	dir = snapshotDir(d.opts.Layout, shape, fp)
	info, err := loadSnapshot(dir)
	if err == nil && info.Fingerprint != fp {
		err = errors.New("fingerprint differs")
	}
	if err != nil {
		if others, _ := filepath.Glob(filepath.Join(d.opts.Layout.WarmDir(), shape+"-*")); len(others) > 0 {
			return "", "the warm snapshot of " + spec.Image + " was made by another QEMU or fvm: booting cold (a new one is made after this boot)"
		}
		return "", ""
	}
	if spec.DiskBytes < info.DiskBytes {
		return "", fmt.Sprintf("--disk %s is smaller than the warm snapshot's %s: booting cold", vm.FormatSize(spec.DiskBytes), vm.FormatSize(info.DiskBytes))
	}
	return dir, ""
}

// warming remembers snapshots being made, so each is made once.
type warming struct {
	mu    sync.Mutex
	keys  map[string]chan struct{} // closed when that build ended
	slots chan struct{}            // one build at a time: each is a whole VM boot
}

func (d *Daemon) warmState() *warming {
	d.warmOnce.Do(func() { d.warm = &warming{keys: map[string]chan struct{}{}, slots: make(chan struct{}, 1)} })
	return d.warm
}

// warmAfterBoot makes the snapshot for a VM that just booted cold, in the
// background, when it has none yet.
func (d *Daemon) warmAfterBoot(spec vm.Spec) {
	if spec.ISO != "" || spec.AutoInstall || spec.BaseImage == "" || !d.warmEnabled() {
		return
	}
	drv := d.driverNamed(spec.Backend)
	if drv == nil {
		return
	}
	if _, ok := drv.(driver.Warmer); !ok {
		return
	}
	d.bgWG.Add(1)
	go func() {
		defer d.bgWG.Done()
		_, err := d.makeSnapshot(d.bg, spec, nil)
		switch {
		case err == nil, errors.Is(err, errSnapshotExists), d.bg.Err() != nil:
		case api.CodeOf(err) == api.CodeUnsupported: // e.g. arm64 guests: the driver says why
			d.log.Info("no warm snapshot for this VM", "image", spec.Image, "arch", spec.Arch, "reason", err)
		default:
			d.log.Warn("warm snapshot not made", "image", spec.Image, "err", err)
		}
	}()
}

var errSnapshotExists = errors.New("the warm snapshot exists")

// WarmImage makes (or finds) the warm snapshot for VMs of spec's image and
// shape, on demand (`fvm image warm`).
func (d *Daemon) WarmImage(ctx context.Context, req api.WarmRequest) (api.WarmSnapshot, error) {
	spec := req.Spec
	vm.Defaults.Fill(&spec)
	spec.Warm = ""
	if spec.Image == "" {
		return api.WarmSnapshot{}, api.Errorf(api.CodeInvalid, "no image given: fvm image warm IMAGE")
	}
	img, release, err := d.images.Resolve(ctx, spec.Image, spec.Arch)
	if err != nil {
		return api.WarmSnapshot{}, err
	}
	defer release()
	if err := setImage(&spec, img); err != nil {
		return api.WarmSnapshot{}, err
	}
	spec.Name = cloudinit.TemplateHostname
	if err := spec.ValidateSettings(); err != nil {
		return api.WarmSnapshot{}, api.Errorf(api.CodeInvalid, "%v", err)
	}
	if _, err := d.chooseDriver(ctx, &spec); err != nil {
		return api.WarmSnapshot{}, err
	}
	// The host's background context: a client that goes away does not cut a build short.
	d.bgWG.Add(1)
	dir, err := d.makeSnapshot(d.bg, spec, nil)
	d.bgWG.Done()
	if err != nil && !errors.Is(err, errSnapshotExists) {
		return api.WarmSnapshot{}, err
	}
	info, err := loadSnapshot(dir)
	if err != nil {
		return api.WarmSnapshot{}, err
	}
	return snapshotAPI(dir, info, true), nil
}

// makeSnapshot boots a template of spec's image and shape and saves it as a
// snapshot; it returns the snapshot's directory (errSnapshotExists when it was
// there already).
func (d *Daemon) makeSnapshot(ctx context.Context, spec vm.Spec, _ func(string)) (string, error) {
	drv := d.driverNamed(spec.Backend)
	if drv == nil {
		return "", fmt.Errorf("backend %q is not on this host", spec.Backend)
	}
	w, ok := drv.(driver.Warmer)
	if !ok {
		return "", api.Errorf(api.CodeUnsupported, "the %s backend makes no warm snapshots", drv.Name())
	}
	fp, err := w.WarmFingerprint(ctx, &spec)
	if errors.Is(err, driver.ErrUnsupported) {
		return "", api.Errorf(api.CodeUnsupported, "image %s: %v", spec.Image, err)
	}
	if err != nil {
		return "", err
	}
	shape := shapeKey(&spec)
	final := snapshotDir(d.opts.Layout, shape, fp)
	if info, err := loadSnapshot(final); err == nil {
		if info.Fingerprint == fp {
			return final, errSnapshotExists
		}
		// Damaged or hand-edited: replace it unless a clone's disk still reads it.
		if used, err := d.vmBases(); err != nil || readByVM(used, final) {
			return final, fmt.Errorf("the warm snapshot %s does not fit and clones still use it: remove them first", final)
		}
		if err := removeTree(final); err != nil {
			return final, err
		}
	}
	ws := d.warmState()
	ws.mu.Lock()
	if busy := ws.keys[final]; busy != nil { // being made: wait for that build
		ws.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if _, err := loadSnapshot(final); err == nil {
			return final, errSnapshotExists
		}
		return "", fmt.Errorf("warm snapshot of %s: the build running when asked failed (see the host log)", spec.Image)
	}
	doneCh := make(chan struct{})
	ws.keys[final] = doneCh
	ws.mu.Unlock()
	defer func() { ws.mu.Lock(); delete(ws.keys, final); close(doneCh); ws.mu.Unlock() }()
	select {
	case ws.slots <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-ws.slots }()
	if info, err := loadSnapshot(final); err == nil && info.Fingerprint == fp { // made while we waited
		return final, errSnapshotExists
	}
	t0 := time.Now()
	d.log.Info("making a warm snapshot", "image", spec.Image, "cpus", spec.CPUs, "memoryMiB", spec.MemoryMiB, "user", spec.User)
	info, err := d.buildSnapshot(ctx, drv, w, spec, shape, final)
	if err != nil {
		return "", fmt.Errorf("warm snapshot of %s: %w", spec.Image, err)
	}
	d.log.Info("warm snapshot made", "image", spec.Image, "dir", final, "took", time.Since(t0).Round(time.Second), "fingerprint", info.Fingerprint)
	d.events.publish(api.Event{Type: api.EventImageWarm, Image: spec.Image, Arch: spec.Arch})
	return final, nil
}

// buildSnapshot boots the template in a temporary directory, waits until its
// guest is settled, suspends and freezes it, and renames the directory into
// place: a crash leaves a .build-* directory, which the next host removes.
func (d *Daemon) buildSnapshot(ctx context.Context, drv driver.Driver, w driver.Warmer, spec vm.Spec, shape, final string) (snapshotInfo, error) {
	if err := os.MkdirAll(d.opts.Layout.WarmDir(), 0o700); err != nil {
		return snapshotInfo{}, err
	}
	tmp, err := os.MkdirTemp(d.opts.Layout.WarmDir(), ".build-")
	if err != nil {
		return snapshotInfo{}, err
	}
	base, err := image.Inspect(spec.BaseImage)
	if err != nil {
		os.RemoveAll(tmp)
		return snapshotInfo{}, err
	}
	t0 := time.Now()
	ts := vm.Spec{
		Name: cloudinit.TemplateHostname, Image: spec.Image, BaseImage: spec.BaseImage, Arch: spec.Arch,
		CPUs: spec.CPUs, MemoryMiB: spec.MemoryMiB, User: spec.User, Accel: spec.Accel, Backend: drv.Name(),
		// The size of the VM that asked: its clones need no growing; larger ones grow online, smaller ones boot cold.
		DiskBytes: max(roundUpGiB(base.VirtualSize), spec.DiskBytes), Created: time.Now().UTC().Truncate(time.Second),
	}
	inst := &store.Instance{Dir: tmp, Spec: ts}
	var m driver.Machine
	fail := func(err error) (snapshotInfo, error) {
		if m != nil {
			m.Kill()
		}
		return snapshotInfo{}, errors.Join(err, drv.Delete(context.Background(), inst), os.RemoveAll(tmp))
	}
	if err := inst.SaveSpec(); err != nil {
		return fail(err)
	}
	if err := d.fill(ctx, drv, inst, &driver.Base{Path: spec.BaseImage, Format: string(base.Format), VirtualSize: base.VirtualSize}); err != nil {
		return fail(err)
	}
	if m, err = drv.Start(ctx, inst); err != nil {
		return fail(err)
	}
	if pid := m.Info().PID; pid > 0 { // a background job: the user's VMs go first
		syscall.Setpriority(syscall.PRIO_PROCESS, pid, 10)
	}
	t := d.target(inst, m, "")
	if t.Addr == "" {
		return fail(errors.New("the template has no SSH endpoint"))
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	cl, err := sshx.WaitReady(wctx, t, nil)
	if err != nil {
		return fail(fmt.Errorf("the template's SSH: %w", err))
	}
	// Settle: cloud-init done, caches dropped (a smaller state), disks synced.
	var out bytes.Buffer
	st, err := cl.Exec(wctx, "cloud-init status --wait > /dev/null 2>&1; sudo -n sync; echo 3 | sudo -n tee /proc/sys/vm/drop_caches > /dev/null", nil, &out, &out)
	cl.Close()
	if err != nil || st > 2 { // 0 done, 1 error, 2 degraded: an image whose cloud-init complains still clones
		return fail(fmt.Errorf("settle the template (status %d): %v %s", st, err, strings.TrimSpace(out.String())))
	}
	s, ok := m.(driver.Suspender)
	if !ok {
		return fail(errors.New("the template cannot be suspended"))
	}
	if err := s.Suspend(wctx); err != nil {
		return fail(err)
	}
	<-m.Done()
	m = nil
	fp, err := w.FreezeSnapshot(inst)
	if err != nil {
		return fail(err)
	}
	want, _ := w.WarmFingerprint(ctx, &spec)
	if fp != want {
		return fail(fmt.Errorf("the template's state fingerprint %s differs from the clones' %s", fp[:12], want[:12]))
	}
	pub, err := store.ReadFile(inst.Path(store.HostKeyPubFile))
	if err != nil {
		return fail(err)
	}
	iid, err := store.ReadFile(inst.Path(store.InstanceIDFile))
	if err != nil {
		return fail(err)
	}
	info := snapshotInfo{
		Shape: shape, Fingerprint: fp, Backend: drv.Name(), Image: spec.Image, Base: spec.BaseImage, Arch: spec.Arch,
		CPUs: spec.CPUs, MemoryMiB: spec.MemoryMiB, User: spec.User, DiskBytes: ts.DiskBytes,
		HostKeyPublic: strings.TrimSpace(string(pub)), InstanceID: strings.TrimSpace(string(iid)),
		CreatedAt: time.Now().UTC(), BuildSeconds: time.Since(t0).Seconds(),
	}
	if err := store.WriteJSON(filepath.Join(tmp, snapshotFile), info); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	store.SyncDir(d.opts.Layout.WarmDir())
	return info, nil
}

func roundUpGiB(n int64) int64 { return (n + 1<<30 - 1) &^ (1<<30 - 1) }

// target is how the host reaches a VM's SSH with the given pinned host key
// ("" for the VM's own).
func (d *Daemon) target(inst *store.Instance, m driver.Machine, hostKey string) sshx.Target {
	ep, err := m.SSHEndpoint(context.Background())
	if err != nil {
		return sshx.Target{}
	}
	signer, _, err := sshx.LoadOrCreateKey(d.opts.Layout.UserKey())
	if err != nil {
		return sshx.Target{}
	}
	if hostKey == "" {
		b, err := store.ReadFile(inst.Path(store.HostKeyPubFile))
		if err != nil {
			return sshx.Target{}
		}
		hostKey = string(b)
	}
	return sshx.Target{Addr: ep.String(), User: inst.Spec.User, Signer: signer, HostKey: strings.TrimSpace(hostKey)}
}

// reidentify makes a freshly restored clone its own machine, over the
// template's key; afterwards only the clone's own key is accepted.
func (d *Daemon) reidentify(ctx context.Context, inst *store.Instance, m driver.Machine) (*sshx.Client, error) {
	snap, err := loadSnapshot(inst.Spec.Warm)
	if err != nil {
		return nil, fmt.Errorf("warm snapshot: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	t := d.target(inst, m, snap.HostKeyPublic)
	if t.Addr == "" {
		return nil, errors.New("no SSH endpoint")
	}
	t0 := time.Now()
	cl, err := sshx.WaitReady(ctx, t, nil)
	if err != nil {
		return nil, fmt.Errorf("reach the clone with the template's key: %w", err)
	}
	tConn := time.Since(t0)
	defer cl.Close()
	priv, err := store.ReadFile(inst.Path(store.HostKeyFile))
	if err != nil {
		return nil, err
	}
	pub, err := store.ReadFile(inst.Path(store.HostKeyPubFile))
	if err != nil {
		return nil, err
	}
	iid, err := store.ReadFile(inst.Path(store.InstanceIDFile))
	if err != nil {
		return nil, err
	}
	_, userKey, err := sshx.LoadOrCreateKey(d.opts.Layout.UserKey())
	if err != nil {
		return nil, err
	}
	random := make([]byte, 80)
	rand.Read(random)
	machineID := cloudinit.NewMachineID(random[64:])
	script, err := cloudinit.ReidentifyScript(cloudinit.Identity{
		Hostname: inst.Spec.Name, User: inst.Spec.User, AuthorizedKeys: dedupe(append([]string{userKey}, inst.Spec.SSHKeys...)),
		HostKeyPrivate: string(priv), HostKeyPublic: string(pub), MachineID: machineID,
		InstanceID: strings.TrimSpace(string(iid)), OldInstanceID: snap.InstanceID, Entropy: random[:64], Now: time.Now(), SetClock: m.Info().ClockStale,
		GrowDisk: inst.Spec.DiskBytes > snap.DiskBytes,
	})
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	var out, errOut bytes.Buffer
	// The script travels in the exec request itself, not on stdin: nothing to lose on the way.
	st, err := cl.Exec(ctx, "sudo -n bash -c "+shellQuote(script), nil, &out, &errOut)
	if err != nil || st != 0 {
		return nil, fmt.Errorf("re-identify (status %d, %v): %s %s", st, err, oneLineText(out.String()), oneLineText(tail(errOut.String(), 600)))
	}
	// What counts is the outcome, checked over the clone's own key: its
	// hostname and machine id are the new ones (the template's key is gone).
	tScript := time.Since(t1)
	t2 := time.Now()
	var own *sshx.Client
	for { // sshd restarts without blocking: until it has, the old key may still answer
		own, err = sshx.WaitReady(ctx, d.target(inst, m, ""), nil)
		if err == nil || !errors.Is(err, sshx.ErrHostKeyMismatch) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("the clone's own key after re-identification: %w", err)
	}
	var check bytes.Buffer
	st, err = own.Exec(ctx, "hostname; cat /etc/machine-id", nil, &check, nil)
	got := strings.Fields(check.String())
	if err != nil || st != 0 || len(got) != 2 || got[0] != inst.Spec.Name || got[1] != machineID {
		own.Close()
		return nil, fmt.Errorf("re-identification did not take (%q, status %d, %v; script said %q)", got, st, err, oneLineText(out.String()))
	}
	d.log.Info("re-identified", "vm", inst.Spec.Name, "connect", tConn.Round(time.Millisecond), "script", tScript.Round(time.Millisecond), "own-key", time.Since(t2).Round(time.Millisecond))
	return own, nil
}

// snapshotsOf lists the snapshots made on base (all when base is "").
func (d *Daemon) snapshotsOf(base string) []api.WarmSnapshot {
	dirs, _ := filepath.Glob(filepath.Join(d.opts.Layout.WarmDir(), "*"))
	var out []api.WarmSnapshot
	for _, dir := range dirs {
		info, err := loadSnapshot(dir)
		if err != nil || (base != "" && info.Base != base) {
			continue
		}
		out = append(out, snapshotAPI(dir, info, d.snapshotCurrent(dir, info)))
	}
	return out
}

// snapshotCurrent says whether new VMs would still clone from a snapshot.
func (d *Daemon) snapshotCurrent(dir string, info snapshotInfo) bool {
	drv := d.driverNamed(info.Backend)
	w, ok := drv.(driver.Warmer)
	if !ok {
		return false
	}
	s := vm.Spec{Name: "check", Image: info.Image, BaseImage: info.Base, Arch: info.Arch, CPUs: info.CPUs, MemoryMiB: info.MemoryMiB, User: info.User, Accel: "auto"}
	fp, err := w.WarmFingerprint(context.Background(), &s)
	return err == nil && fp == info.Fingerprint && filepath.Base(dir) == info.Shape+"-"+fp[:16]
}

func snapshotAPI(dir string, info snapshotInfo, current bool) api.WarmSnapshot {
	return api.WarmSnapshot{
		Dir: dir, Arch: info.Arch, CPUs: info.CPUs, MemoryMiB: info.MemoryMiB, User: info.User,
		DiskBytes: info.DiskBytes, Bytes: dirBytes(dir), CreatedAt: info.CreatedAt, Current: current,
	}
}

// dirBytes is what a directory's files take on disk.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				} else {
					n += fi.Size()
				}
			}
		}
		return nil
	})
	return n
}

// removeSnapshots deletes snapshots that no VM's disk reads and that are
// either made on one of bases or no longer current; it returns what it freed.
func (d *Daemon) removeSnapshots(used map[string]bool, bases map[string]bool, stale bool) (removed []string, freed int64) {
	dirs, _ := filepath.Glob(filepath.Join(d.opts.Layout.WarmDir(), "*"))
	for _, dir := range dirs {
		info, err := loadSnapshot(dir)
		if err != nil || readByVM(used, dir) {
			continue
		}
		if !bases[info.Base] && !(stale && !d.snapshotCurrent(dir, info)) {
			continue
		}
		n := dirBytes(dir)
		if err := removeTree(dir); err != nil {
			d.log.Warn("remove warm snapshot", "dir", dir, "err", err)
			continue
		}
		removed, freed = append(removed, dir), freed+n
	}
	return removed, freed
}

// readByVM says whether some VM's disk reads a file of the snapshot in dir.
func readByVM(used map[string]bool, dir string) bool {
	for p := range used {
		if strings.HasPrefix(p, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// removeTree removes a snapshot directory, whose files are read-only.
func removeTree(dir string) error {
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			os.Chmod(p, 0o600)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// cleanWarmBuilds removes what crashed hosts left of snapshot builds: their
// template QEMU, if it still runs, and the directory.
func (d *Daemon) cleanWarmBuilds(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(d.opts.Layout.WarmDir(), ".build-*"))
	for _, dir := range dirs {
		inst := &store.Instance{Dir: dir}
		store.ReadJSON(inst.Path(store.SpecFile), &inst.Spec)
		if drv, err := d.driverOf(&inst.Spec); err == nil {
			drv.Delete(ctx, inst)
		}
		if err := removeTree(dir); err != nil {
			d.log.Warn("remove an unfinished warm snapshot", "dir", dir, "err", err)
		}
	}
}

func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
