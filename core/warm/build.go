package warm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Building snapshots: a template booted in a temporary directory until its
// guest settled, suspended, frozen and renamed into place.

// ErrExists means the snapshot asked for is there already.
var ErrExists = errors.New("the warm snapshot exists")

// AfterBoot makes, in the background, the snapshot of a VM that just booted
// cold, when its image and shape have none yet and the host makes them by
// itself (Options.Enabled).
func (p *Pool) AfterBoot(spec vm.Spec) {
	if spec.ISO != "" || spec.AutoInstall || spec.BaseImage == "" || !p.opts.Enabled() {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, err := p.Make(p.ctx, spec)
		switch {
		case err == nil, errors.Is(err, ErrExists), p.ctx.Err() != nil:
		case errors.Is(err, errNoClones): // e.g. arm64 guests: the driver says why
			p.opts.Log.Info("no warm snapshot for this VM", "image", spec.Image, "arch", spec.Arch, "reason", err)
		default:
			p.opts.Log.Warn("warm snapshot not made", "image", spec.Image, "err", err)
		}
	}()
}

// MakeNow makes (or finds) the snapshot for VMs of spec's image and shape
// on demand (`fvm image warm`), in the pool's context: a client that goes
// away does not cut a build short. spec has its image resolved and backend chosen.
func (p *Pool) MakeNow(spec vm.Spec) (api.WarmSnapshot, error) {
	p.wg.Add(1)
	dir, err := p.Make(p.ctx, spec)
	p.wg.Done()
	if errors.Is(err, errNoClones) {
		return api.WarmSnapshot{}, unsupported(spec.Image, err)
	}
	if err != nil && !errors.Is(err, ErrExists) {
		return api.WarmSnapshot{}, err
	}
	info, err := Load(dir)
	if err != nil {
		return api.WarmSnapshot{}, err
	}
	return describe(dir, info, true), nil
}

// Make boots a template of spec's image and shape and saves it as a
// snapshot; it returns the snapshot's directory (ErrExists when it was there
// already). A driver that makes no clones of spec: errNoClones, with why.
func (p *Pool) Make(ctx context.Context, spec vm.Spec) (string, error) {
	v, err := p.opts.Bind(ctx, &spec)
	if err != nil {
		return "", err
	}
	fp, err := fingerprintOf(ctx, v, &spec)
	if err != nil {
		return "", err
	}
	shape := ShapeKey(&spec)
	final := p.dir(shape, fp)
	if info, err := Load(final); err == nil {
		if info.Fingerprint == fp {
			return final, ErrExists
		}
		// Damaged or hand-edited: replace it unless a clone's disk still reads it.
		if used, err := p.opts.InUse(); err != nil || readByVM(used, final) {
			return final, fmt.Errorf("the warm snapshot %s does not fit and clones still use it: remove them first", final)
		}
		if err := removeTree(final); err != nil {
			return final, err
		}
	}
	p.mu.Lock()
	if busy := p.keys[final]; busy != nil { // being made: wait for that build
		p.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if _, err := Load(final); err == nil {
			return final, ErrExists
		}
		return "", fmt.Errorf("warm snapshot of %s: the build running when asked failed (see the host log)", spec.Image)
	}
	doneCh := make(chan struct{})
	p.keys[final] = doneCh
	p.mu.Unlock()
	defer func() { p.mu.Lock(); delete(p.keys, final); close(doneCh); p.mu.Unlock() }()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-p.slots }()
	if info, err := Load(final); err == nil && info.Fingerprint == fp { // made while we waited
		return final, ErrExists
	}
	t0 := time.Now()
	p.opts.Log.Info("making a warm snapshot", "image", spec.Image, "cpus", spec.CPUs, "memoryMiB", spec.MemoryMiB, "user", spec.User)
	info, err := p.build(ctx, v, spec, shape, fp, final)
	if err != nil {
		return "", fmt.Errorf("warm snapshot of %s: %w", spec.Image, err)
	}
	p.opts.Log.Info("warm snapshot made", "image", spec.Image, "dir", final, "took", time.Since(t0).Round(time.Second), "fingerprint", info.Fingerprint)
	if p.opts.Made != nil {
		p.opts.Made(spec.Image, spec.Arch)
	}
	return final, nil
}

// buildPrefix names a snapshot being built: a crash leaves one, which the
// next host removes (CleanBuilds).
const buildPrefix = ".build-"

// build boots the template in a temporary directory, waits until its guest
// is settled, suspends and freezes it, and renames the directory into place.
func (p *Pool) build(ctx context.Context, v *driver.VM, spec vm.Spec, shape, want, final string) (Info, error) {
	if err := os.MkdirAll(p.opts.Layout.WarmDir(), 0o700); err != nil {
		return Info{}, err
	}
	tmp, err := os.MkdirTemp(p.opts.Layout.WarmDir(), buildPrefix)
	if err != nil {
		return Info{}, err
	}
	base, err := image.Inspect(spec.BaseImage)
	if err != nil {
		os.RemoveAll(tmp)
		return Info{}, err
	}
	t0 := time.Now()
	ts := vm.Spec{
		Name: cloudinit.TemplateHostname, Image: spec.Image, BaseImage: spec.BaseImage, Arch: spec.Arch,
		CPUs: spec.CPUs, MemoryMiB: spec.MemoryMiB, User: spec.User, Accel: spec.Accel, Backend: v.Name(),
		// The size of the VM that asked: its clones need no growing; larger ones grow online, smaller ones boot cold.
		DiskBytes: max(roundUpGiB(base.VirtualSize), spec.DiskBytes), Created: time.Now().UTC().Truncate(time.Second),
	}
	inst := &store.Instance{Dir: tmp, Spec: ts}
	v = driver.Bind(ctx, v.Driver, &inst.Spec) // the template is a VM of its own (its NIC, for one)
	var run *driver.Run
	fail := func(err error) (Info, error) {
		if run != nil {
			run.Kill()
		}
		return Info{}, errors.Join(err, v.Delete(context.Background(), inst), os.RemoveAll(tmp))
	}
	if err := inst.SaveSpec(); err != nil {
		return fail(err)
	}
	seed, err := p.opts.Provision(inst, v)
	if err != nil {
		return fail(err)
	}
	in := driver.CreateInput{Seed: seed, Base: &driver.Base{Path: spec.BaseImage, Format: string(base.Format), VirtualSize: base.VirtualSize}}
	if err := v.Create(ctx, inst, in); err != nil {
		return fail(err)
	}
	m, err := v.Start(ctx, inst, driver.StartOptions{Template: true})
	if err != nil {
		return fail(err)
	}
	run = v.Run(m)
	if pid := m.Info().PID; pid > 0 { // a background job: the user's VMs go first
		syscall.Setpriority(syscall.PRIO_PROCESS, pid, 10)
	}
	t := p.opts.Target(inst, m, "")
	if t.Addr == "" {
		return fail(errors.New("the template has no SSH endpoint"))
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	if m.Info().AgentAtBoot && run.Agent != nil {
		// As a VM's cold boot does (the daemon's gate): an SSH attempt made
		// before the guest's network is up is kept by QEMU's port forward,
		// and the guest starts an sshd for each once it listens.
		actx, acancel := context.WithTimeout(wctx, driver.BootAgentBound(m.Info().Accel))
		if driver.AwaitAgent(actx, run.Agent.GuestPing) {
			t = t.Up()
			if run.NIC != nil {
				driver.AwaitGuestIPv4(actx, run.NIC)
			}
		}
		acancel()
	}
	cl, err := sshx.WaitReady(wctx, t, nil)
	if err != nil {
		return fail(fmt.Errorf("the template's SSH: %w", err))
	}
	// Settle: cloud-init done, udev's coldplug done (fvm's image lets it
	// yield to the boot: clones must not inherit a half-done one), calendar
	// timers paused for the clones (cloudinit.PauseTimersCommand), caches
	// dropped (a smaller state), disks synced.
	var out bytes.Buffer
	st, err := cl.Exec(wctx, "("+cloudinit.WaitCommand+") > /dev/null 2>&1; sudo -n udevadm settle --timeout=60 > /dev/null 2>&1; ("+cloudinit.PauseTimersCommand+") > /dev/null 2>&1; sudo -n sync; echo 3 | sudo -n tee /proc/sys/vm/drop_caches > /dev/null", nil, &out, &out)
	cl.Close()
	if err != nil || st > 2 { // 0 done, 1 error, 2 degraded: an image whose cloud-init complains still clones
		return fail(fmt.Errorf("settle the template (status %d): %v %s", st, err, strings.TrimSpace(out.String())))
	}
	p.awaitLogout(wctx, inst.Spec.Name, run)
	if run.Suspend == nil {
		return fail(errors.New("the template cannot be suspended: " + v.Caps.WhyNot(driver.CapSaveState, v.Name())))
	}
	if err := run.Suspend.Suspend(wctx); err != nil {
		return fail(err)
	}
	<-m.Done()
	run = nil
	fp, err := v.Warm.FreezeSnapshot(inst)
	if err != nil {
		return fail(err)
	}
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
	info := Info{
		Shape: shape, Fingerprint: fp, Backend: v.Name(), Image: spec.Image, Base: spec.BaseImage, Arch: spec.Arch,
		CPUs: spec.CPUs, MemoryMiB: spec.MemoryMiB, User: spec.User, DiskBytes: ts.DiskBytes,
		HostKeyPublic: strings.TrimSpace(string(pub)), InstanceID: strings.TrimSpace(string(iid)),
		CreatedAt: time.Now().UTC(), BuildSeconds: time.Since(t0).Seconds(),
	}
	if err := store.WriteJSON(filepath.Join(tmp, InfoFile), info); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	store.SyncDir(p.opts.Layout.WarmDir())
	return info, nil
}

// loggedOut is true in a guest with no login session (but the user
// managers' own, class manager, which linger keeps) and no sshd of a
// connection left: an sshd-session or sshd-auth process (a listening sshd's
// connection), or an sshd@/ssh@ unit (one sshd per connection: fvm's image
// until recipe 10-lean).
const loggedOut = `for i in $(seq 100); do
  if [ -z "$(loginctl list-sessions --no-legend 2>/dev/null | grep -v ' manager')" ] && [ -z "$(grep -lxs -e sshd-session -e sshd-auth /proc/[0-9]*/comm)" ] && [ -z "$(systemctl list-units --no-legend --state=active 'sshd@*' 'ssh@*' 2>/dev/null)" ]; then exit 0; fi
  sleep 0.2
done
exit 1`

// awaitLogout waits until the template's guest has ended the login of the
// host's connection, closed just before: its memory is saved next, and every
// clone would otherwise first close that login (sshd, the session's scope,
// logind) while it should be answering as itself. Without an agent that
// answers, a short pause does.
func (p *Pool) awaitLogout(ctx context.Context, name string, run *driver.Run) {
	answers := false
	if run.Agent != nil { // a channel to an agent the guest may not run (catalog images)
		pctx, cancel := context.WithTimeout(ctx, agentWait)
		answers = run.Agent.GuestPing(pctx) == nil
		cancel()
	}
	if answers {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		x, err := run.Agent.GuestExec(actx, []string{"/bin/sh", "-c", loggedOut}, nil)
		if err == nil && x.Status == 0 {
			return
		}
		p.opts.Log.Info("the template's login did not end in time: saved as it is", "vm", name, "status", x.Status, "err", err)
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
	}
}

func roundUpGiB(n int64) int64 { return (n + 1<<30 - 1) &^ (1<<30 - 1) }
