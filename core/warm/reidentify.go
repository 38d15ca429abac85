package warm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// Reidentified is a clone made its own machine.
type Reidentified struct {
	// Client is connected with the clone's own host key, and saw the clone's
	// hostname and machine id: the VM's first SSH connection.
	Client    *sshx.Client
	Via       string // ViaAgent or ViaSSH
	Note      string // why not through the agent, when it was not
	Phases    []api.StartPhase
	MachineID string // the clone's new one
	last      time.Time
}

// How a clone was re-identified (Reidentified.Via).
const (
	ViaAgent = "agent" // the guest agent ran the script: no SSH until the clone's own key answers
	ViaSSH   = "ssh"   // over SSH with the template's key
	ViaSpare = "spare" // a spare clone, made its own ahead of time, handed over (core/daemon/spare.go)
)

// ownKeyPoll is the pause between attempts to reach a clone with its own key.
const ownKeyPoll = 25 * time.Millisecond

// agentWait bounds the wait for the guest agent of a restored clone. It ran
// in the template when its memory was saved, so it answers at once; one that
// does not is stopped or broken, and SSH takes over.
const agentWait = 3 * time.Second

func (r *Reidentified) mark(name string) {
	now := time.Now()
	r.Phases = append(r.Phases, api.StartPhase{Name: name, Seconds: now.Sub(r.last).Seconds()})
	r.last = now
}

// Reidentify makes a freshly restored clone its own machine
// (cloudinit.ReidentifyScript): its own host key, hostname, machine id,
// authorized keys, instance id, entropy, clock and disk size. The script runs
// through the guest agent where the VM has one that answers (no SSH
// handshake, no wait for sshd), else over SSH with the template's key.
// Afterwards only the clone's own key is accepted; the result holds a
// connection made with that key, checked to see the new hostname and machine
// id. Any clone of a snapshot (inst.Spec.Warm names it) is re-identified so.
//
// A spare (a clone the host keeps ready, handed over later under a VM's
// name with cloudinit.RenameScript) keeps its calendar timers paused.
func (p *Pool) Reidentify(ctx context.Context, inst *store.Instance, r *driver.Run, userKey string, spare bool) (Reidentified, error) {
	res := Reidentified{last: time.Now()}
	snap, err := Load(inst.Spec.Warm)
	if err != nil {
		return res, fmt.Errorf("warm snapshot: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	info := r.Info()
	switch {
	case r.Agent == nil:
		res.Note = "the VM has no guest agent channel"
	case info.ClockStale: // the restore's clock setting found no agent already
		res.Note = "the guest agent did not answer after the restore"
	default:
		actx, acancel := context.WithTimeout(ctx, agentWait)
		err := r.Agent.GuestPing(actx)
		acancel()
		if err == nil {
			res.Via = ViaAgent
			res.mark(api.PhaseAgent)
		} else if errors.Is(err, driver.ErrNoAgent) {
			res.Note = "the guest agent did not answer"
		} else {
			return res, err
		}
	}
	// The clock, where the restore left it (ClockLeft): set through the agent
	// while the host connects, before the login; else by the script.
	agentClock := info.ClockLeft && res.Via == ViaAgent
	id, err := p.identity(inst, snap, userKey, info.ClockStale || info.ClockLeft && !agentClock)
	if err != nil {
		return res, err
	}
	id.Spare, res.MachineID = spare, id.MachineID
	parts, err := cloudinit.ReidentifyScripts(id)
	if err != nil {
		return res, err
	}
	// Through the agent, the first part runs alone (the clone's key, names
	// and the user's keys), the rest while the host connects with the
	// clone's key; over SSH the whole script runs on the template's key.
	rest := ""
	if res.Via == ViaAgent {
		_, err = runByAgent(ctx, r.Agent, parts.First, "keyed")
		rest = parts.Rest
	} else {
		res.Via = ViaSSH
		err = p.runBySSH(ctx, inst, r, snap.HostKeyPublic, parts.Script(), &res)
	}
	if err != nil {
		return res, err
	}
	res.mark(api.PhaseReidentify)
	// What counts is the outcome: the clone's own key answers (the template's
	// is gone), its hostname and machine id are the new ones.
	if res.Client, err = p.ownKey(ctx, inst, r, id.MachineID, rest, agentClock); err != nil {
		return res, err
	}
	res.mark(api.PhaseKeyLive)
	p.opts.Log.Info("re-identified", "vm", inst.Spec.Name, "via", res.Via, "note", res.Note, "phases", phaseText(res.Phases))
	return res, nil
}

// Rename hands a spare clone over as the VM name (cloudinit.RenameScript)
// through its guest agent, and checks what it reads back: the name, and the
// machine id the spare was given.
func (p *Pool) Rename(ctx context.Context, r *driver.Run, name, spareName, machineID string) error {
	script, err := cloudinit.RenameScript(name, spareName)
	if err != nil {
		return err
	}
	out, err := runByAgent(ctx, r.Agent, script, "reidentified")
	if err != nil {
		return err
	}
	return cloudinit.ReadBack(out, name, machineID)
}

// identity is what the clone gets of its own: the keys and instance id the
// host wrote at create, a new machine id and host randomness. The hostname it
// replaces is the snapshot's (a named snapshot's VM), else the template's.
func (p *Pool) identity(inst *store.Instance, snap Info, userKey string, setClock bool) (cloudinit.Identity, error) {
	priv, pub, instanceID, err := inst.ReadIdentity()
	if err != nil {
		return cloudinit.Identity{}, err
	}
	random := make([]byte, 80)
	rand.Read(random)
	return cloudinit.Identity{
		Hostname: inst.Spec.Name, OldHostname: snap.Hostname, User: inst.Spec.User, AuthorizedKeys: cloudinit.AuthorizedKeys(userKey, inst.Spec.SSHKeys),
		HostKeyPrivate: string(priv), HostKeyPublic: pub, MachineID: cloudinit.NewMachineID(random[64:]),
		InstanceID: instanceID, OldInstanceID: snap.InstanceID, Entropy: random[:64], Now: time.Now(),
		SetClock: setClock, GrowDisk: inst.Spec.DiskBytes > snap.DiskBytes,
	}, nil
}

// runByAgent runs a script as root through the guest agent, on bash's
// standard input (the private host key in it never lands in a file or on a
// command line of the guest), and wants done in its output.
func runByAgent(ctx context.Context, a driver.GuestAgent, script, done string) (string, error) {
	x, err := a.GuestExec(ctx, []string{"/bin/bash", "-s"}, []byte(script))
	if err != nil {
		return "", fmt.Errorf("re-identify through the guest agent: %w", err)
	}
	if x.Status != 0 || !strings.Contains(string(x.Stdout), done) {
		return "", fmt.Errorf("re-identify through the guest agent (status %d): %s %s", x.Status, oneLine(string(x.Stdout)), oneLine(tail(string(x.Stderr), 600)))
	}
	return string(x.Stdout), nil
}

// runBySSH runs the script as root over SSH with the template's host key
// pinned: for guests whose agent does not answer.
func (p *Pool) runBySSH(ctx context.Context, inst *store.Instance, r *driver.Run, templateKey, script string, res *Reidentified) error {
	t := p.opts.Target(inst, r, templateKey)
	if t.Addr == "" {
		return errors.New("no SSH endpoint")
	}
	cl, err := sshx.WaitReady(ctx, t, nil)
	if err != nil {
		return fmt.Errorf("reach the clone with the template's key: %w", err)
	}
	defer cl.Close()
	res.mark(api.PhaseTemplate)
	var out, errOut bytes.Buffer
	// The script travels in the exec request itself, not on stdin: nothing to lose on the way.
	st, err := cl.Exec(ctx, "sudo -n bash -c "+sshx.ShellQuote(script), nil, &out, &errOut)
	if err != nil || st != 0 {
		return fmt.Errorf("re-identify (status %d, %v): %s %s", st, err, oneLine(out.String()), oneLine(tail(errOut.String(), 600)))
	}
	return nil
}

// ownKey connects with the clone's own host key pinned and checks that the
// guest is the clone now. A listening sshd restarts without blocking (a
// per-connection one needs no restart): until it has, the template's key may
// still answer, and the next attempt waits for it. With rest (the clone
// re-identified through the agent), the script's rest runs through the agent
// while SSH connects, and its read-back is the identity check (an SSH session
// of its own would cost a login under the guest's PAM after the handshake:
// a noticeable part of a clone's wait under emulation); else the identity is
// read over the connection. With setClock the agent sets the guest's clock
// first: the handshake takes longer than that, so sshd's login is logged and
// recorded at the right time.
func (p *Pool) ownKey(ctx context.Context, inst *store.Instance, r *driver.Run, machineID, rest string, setClock bool) (*sshx.Client, error) {
	var agentCheck chan error
	if rest != "" {
		agentCheck = make(chan error, 1)
		go func() {
			if setClock {
				if err := r.Agent.GuestSetTime(ctx, time.Now()); err != nil {
					agentCheck <- fmt.Errorf("set the clone's clock through the guest agent: %w", err)
					return
				}
			}
			out, err := runByAgent(ctx, r.Agent, rest, "reidentified")
			if err == nil {
				err = cloudinit.ReadBack(out, inst.Spec.Name, machineID)
			}
			agentCheck <- err
		}()
	}
	// A listening sshd re-executing itself on the first part's SIGHUP refuses
	// connections for a moment, or answers with the template's key if it has
	// not yet seen the signal: attempts follow each other closely.
	t := p.opts.Target(inst, r, "")
	t.Poll = ownKeyPoll
	var own *sshx.Client
	var err error
	for {
		own, err = sshx.WaitReady(ctx, t, nil)
		if err == nil || !errors.Is(err, sshx.ErrHostKeyMismatch) || ctx.Err() != nil {
			break
		}
		time.Sleep(ownKeyPoll)
	}
	if err != nil {
		return nil, fmt.Errorf("the clone's own key after re-identification: %w", err)
	}
	// Ready means the first command costs what any does: the login after the
	// handshake is done.
	if err := own.LoggedIn(ctx); err != nil {
		own.Close()
		return nil, fmt.Errorf("the clone's own key after re-identification: %w", err)
	}
	if agentCheck != nil {
		err = <-agentCheck
	} else {
		var check bytes.Buffer
		var st int
		if st, err = own.Exec(ctx, cloudinit.ReadBackCommand, nil, &check, nil); err != nil {
			err = fmt.Errorf("read the clone's identity over SSH: %w", err)
		} else {
			err = checkIdentity(check.String(), st, inst.Spec.Name, machineID)
		}
	}
	if err != nil {
		own.Close()
		return nil, err
	}
	return own, nil
}

// checkIdentity checks ReadBackCommand's output and status: the clone's name
// and machine id.
func checkIdentity(out string, status int, name, machineID string) error {
	if status != 0 {
		return fmt.Errorf("re-identification did not take: reading it back exited %d: %s", status, oneLine(out))
	}
	return cloudinit.ReadBack(out, name, machineID)
}

// phaseText is phases for a log line: "agent-ready=12ms re-identify=310ms ...".
func phaseText(ps []api.StartPhase) string {
	var s []string
	for _, ph := range ps {
		s = append(s, fmt.Sprintf("%s=%s", ph.Name, time.Duration(ph.Seconds*float64(time.Second)).Round(time.Millisecond)))
	}
	return strings.Join(s, " ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
