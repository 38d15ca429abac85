package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/server"
	"github.com/fvmhq/fvm/core/api/stream"
	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

var _ server.ExecService = (*Daemon)(nil)

// hold starts holding the pinned SSH connection of a VM that now runs (started
// or re-adopted): commands then cost a session on it, not a handshake. It is
// closed by watch when the VM ends.
func (d *Daemon) hold(name string, inst *store.Instance, m *driver.Run, initial *sshx.Client) {
	h, nw, err := d.holder(name, inst, m, initial)
	d.mu.Lock()
	e := d.entry(name)
	if e.run != m { // it ended already
		d.mu.Unlock()
		if h != nil {
			h.Close()
		}
		return
	}
	var pf *portForwards
	if err != nil {
		e.sshErr = err
	} else {
		e.ssh, e.net = h, nw
		pf = &portForwards{fwd: map[uint16]*activeForward{}}
		e.ports = pf
	}
	d.mu.Unlock()
	if nw != nil && m.NIC != nil {
		go d.watchNetwork(name, m.NIC, h, nw)
	}
	if pf != nil {
		go d.watchPorts(name, inst, m, h, pf)
		if m.Caps.StaticForwardsBySSH {
			go d.staticForwards(name, inst, h)
		}
	}
	if err != nil {
		d.log.Warn("cannot hold an ssh connection", "vm", name, "err", err)
	}
}

// holder starts holding a VM's connection; on a cold boot gated on its
// agent it also returns the watch for a network that does not come up.
func (d *Daemon) holder(name string, inst *store.Instance, m *driver.Run, initial *sshx.Client) (*sshx.Holder, *netWatch, error) {
	ep, err := m.SSHEndpoint(context.Background())
	if err != nil {
		return nil, nil, fmt.Errorf("vm %q: ssh endpoint: %w", name, err)
	}
	signer, _, err := sshx.LoadOrCreateKey(d.opts.Layout.UserKey())
	if err != nil {
		return nil, nil, fmt.Errorf("fvm ssh key: %w", err)
	}
	hostKey, err := store.ReadFile(inst.Path(store.HostKeyPubFile))
	if err != nil {
		return nil, nil, fmt.Errorf("vm %q: host key: %w", name, err)
	}
	t := sshx.Target{Addr: ep.String(), User: inst.Spec.User, Signer: signer, HostKey: strings.TrimSpace(string(hostKey))}
	var nw *netWatch
	gate := d.agentGate(name, m)
	if gate != nil {
		nw = newNetWatch()
		agentGate := gate
		gate = func(ctx context.Context) bool {
			up := agentGate(ctx)
			if up {
				nw.agentUp() // the network watch's clock runs from here
				if m.NIC != nil {
					nctx, ncancel := context.WithTimeout(ctx, guestIPv4Bound)
					driver.AwaitGuestIPv4(nctx, m.NIC)
					ncancel()
				}
			}
			return up
		}
	}
	h := sshx.Hold(t, sshx.HolderOptions{
		Gate:           gate,
		OnAttempt:      attemptLogger(d.log, name),
		InstallerFirst: inst.Spec.ISO != "",
		Initial:        initial,
		// A cold boot is ready once a command ran (the login set up, the user's
		// manager up); a restored guest had them up already.
		Session: m.Info().Boot == driver.BootCold,
		OnReady: func(reconnected bool) {
			d.log.Info("ssh connection held", "vm", name, "reconnected", reconnected)
			if !reconnected {
				d.startReady(name, m)
			}
			if !reconnected && m.Info().ClockStale {
				go d.setClock(name)
			}
			if !reconnected && m.Info().Boot == driver.BootCold && inst.Spec.Warm == "" {
				d.warm.AfterBoot(inst.Spec) // the next VM of this image and shape starts warm
			}
			d.events.publish(api.Event{Type: api.EventVMReady, VM: name, State: vm.Running})
		},
		OnFatal: func(err error) {
			d.log.Error("ssh host key changed: refusing the VM's connections", "vm", name, "err", err)
			d.mu.Lock()
			if e := d.vms[name]; e != nil && e.run == m {
				e.err = err.Error()
			}
			d.mu.Unlock()
			d.events.publish(api.Event{Type: api.EventVMState, VM: name, State: vm.Error, Error: err.Error()})
		},
	})
	return h, nw, nil
}

// attemptLogger logs a VM's failed SSH attempts, at most one line per
// attemptLogEvery (with how many failed since the last line): a boot that
// never answers says why in the host log without a line per attempt.
func attemptLogger(log *slog.Logger, name string) func(error) {
	var last time.Time
	n := 0
	return func(err error) {
		n++
		if time.Since(last) < attemptLogEvery {
			return
		}
		log.Info("ssh not answering yet", "vm", name, "attempts", n, "last", err)
		last, n = time.Now(), 0
	}
}

const attemptLogEvery = 30 * time.Second

// agentGate is the holder's gate on a cold boot of an image that runs the
// guest agent from its boot (nil otherwise): it returns once the agent
// answers. The agent starts beside sshd's socket, after the guest's network,
// so SSH is tried only from then on. Before, every attempt made while the
// guest's network was down stayed pending in QEMU's port forward, and the
// guest started an sshd for each once it listened (3–6 per boot here under
// TCG, each closed at once, all competing with the login fvm waits for). If
// the agent has not answered within driver.BootAgentBound (the VM's user
// stopped or removed it), SSH is tried as for any image; once it has, the
// guest is up and a slow sshd is waited for (sshx.Target.Up), after its IPv4
// address (the holder's gate: driver.AwaitGuestIPv4).
func (d *Daemon) agentGate(name string, m *driver.Run) func(context.Context) bool {
	info := m.Info()
	if info.Boot != driver.BootCold || !info.AgentAtBoot || m.Agent == nil {
		return nil
	}
	wait := driver.BootAgentBound(info.Accel)
	return func(hctx context.Context) bool {
		ctx, cancel := context.WithTimeout(hctx, wait)
		defer cancel()
		if driver.AwaitAgent(ctx, m.Agent.GuestPing) {
			d.startPhase(name, m, api.PhaseAgent)
			return true
		}
		if hctx.Err() == nil { // not the VM's end
			d.log.Info("the guest agent did not answer: trying SSH without it", "vm", name, "after", wait)
		}
		return false
	}
}

// guestIPv4Bound bounds a cold boot's wait for the guest's address between
// its agent's answer and the first SSH attempt. An agent can answer before
// the address is there (fvm's image starts it once its network stage is
// done, which a slow or failed DHCP does not hold up); an address that does
// not come is then the network watch's to name.
const guestIPv4Bound = 30 * time.Second

// setClock sets a restored guest's clock over SSH, where the backend could not.
func (d *Daemon) setClock(name string) {
	h, err := d.running(name)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now()
	cmd := fmt.Sprintf("sudo -n date -u -s @%d.%09d >/dev/null", now.Unix(), now.Nanosecond())
	if st, out, err := runQuiet(ctx, h, cmd); err != nil || st != 0 {
		d.log.Warn("could not set a restored guest's clock", "vm", name, "status", st, "out", out, "err", err)
		return
	}
	d.log.Info("restored guest's clock set over ssh", "vm", name)
}

// running returns the machine and held connection of a running VM, or a conflict.
func (d *Daemon) running(name string) (*sshx.Holder, error) {
	if _, err := d.get(name); err != nil {
		return nil, err
	}
	d.mu.Lock()
	e := d.entry(name)
	m, h, herr, op, nw := e.run, e.ssh, e.sshErr, e.op, e.net
	d.mu.Unlock()
	switch {
	case h != nil && h.Connects() == 0 && nw.stalled() != nil:
		return nil, api.Errorf(api.CodeConflict, "%s", nw.stalled())
	case m == nil && op == "starting":
		return nil, api.Errorf(api.CodeConflict, "vm %q is still starting: try again in a moment", name)
	case m == nil:
		return nil, notRunning(name)
	case herr != nil:
		return nil, herr
	case h == nil:
		return nil, api.Errorf(api.CodeConflict, "vm %q is still starting: try again in a moment", name)
	}
	return h, nil
}

// Exec starts a command in a VM over its held connection, waiting within ctx
// for its SSH to answer (a VM that is booting).
func (d *Daemon) Exec(ctx context.Context, name string, req api.ExecRequest) (stream.Process, error) {
	h, err := d.running(name)
	if err != nil {
		return nil, err
	}
	p, err := h.Start(ctx, sshx.ProcessOptions{
		Command: req.Command, Subsystem: req.Subsystem, TTY: req.TTY, Term: req.Term, Cols: req.Cols, Rows: req.Rows,
	})
	if err != nil {
		return nil, fmt.Errorf("vm %q: %w", name, err)
	}
	return p, nil
}

// cloudInitWait bounds the wait for cloud-init, whose package installs can be long.
const cloudInitWait = 30 * time.Minute

// Wait returns once the VM's SSH answers, or (api.WaitCloudInit) once cloud-init
// finished in the guest, asked over the held connection.
func (d *Daemon) Wait(ctx context.Context, name string, req api.WaitRequest) (api.WaitResult, error) {
	switch req.For {
	case api.WaitSSH, api.WaitCloudInit:
	case "":
		req.For = api.WaitSSH
	default:
		return api.WaitResult{}, api.Errorf(api.CodeInvalid, "wait for %q: use %s or %s", req.For, api.WaitSSH, api.WaitCloudInit)
	}
	h, err := d.running(name)
	if err != nil {
		return api.WaitResult{}, err
	}
	d.mu.Lock()
	nw := d.entry(name).net
	d.mu.Unlock()
	if err := awaitReady(ctx, h, nw); err != nil {
		if nw.stalled() != nil {
			return api.WaitResult{}, api.Errorf(api.CodeConflict, "%s", err)
		}
		return api.WaitResult{}, fmt.Errorf("vm %q: %w", name, err)
	}
	if req.For == api.WaitSSH {
		return api.WaitResult{For: req.For, Status: "ready"}, nil
	}
	wctx, cancel := context.WithTimeout(ctx, cloudInitWait)
	defer cancel()
	// --wait blocks until every stage ran; the status line is the last one.
	status, out, err := runQuiet(wctx, h, cloudinit.WaitCommand)
	if err != nil {
		return api.WaitResult{}, fmt.Errorf("vm %q: cloud-init status: %w", name, err)
	}
	return cloudInitResult(status, out), nil
}

// cloudInitResult reads `cloud-init status --wait` (cloudinit.WaitCommand):
// exit 0 done, 2 done with recoverable errors (cloud-init 23.4+), 1 error;
// 127 means no cloud-init. Done by fvm-init, the detail says "fvm-init".
func cloudInitResult(status int, out string) api.WaitResult {
	r := api.WaitResult{For: api.WaitCloudInit, Detail: strings.TrimSpace(out)}
	switch {
	case status == 127:
		r.Status, r.Detail = "none", "the guest has no cloud-init: nothing to wait for"
	case status == 0 && strings.Contains(out, "status: disabled"):
		r.Status = "none"
	case status == 0 && strings.Contains(out, "(fvm-init)"):
		r.Status, r.Detail = "done", "fvm-init"
	case status == 0:
		r.Status, r.Detail = "done", ""
	case status == 2:
		r.Status = "degraded"
	default:
		r.Status = "error"
	}
	return r
}

// runQuiet runs a command on the held connection and returns its status and output.
func runQuiet(ctx context.Context, h *sshx.Holder, cmd string) (int, string, error) {
	p, err := h.Start(ctx, sshx.ProcessOptions{Command: "bash -c " + sshx.ShellQuote(cmd)})
	if err != nil {
		return -1, "", err
	}
	defer p.Close()
	p.Stdin().Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, io.LimitReader(p.Stdout(), 1<<20)); close(done) }()
	go io.Copy(io.Discard, p.Stderr())
	select {
	case <-done:
	case <-ctx.Done():
		p.Signal("KILL")
		return -1, "", ctx.Err()
	}
	status, err := p.Wait()
	return status, out.String(), err
}
