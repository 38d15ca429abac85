package warm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// Reidentify makes a freshly restored clone its own machine
// (cloudinit.ReidentifyScript): its own host key, hostname, machine id,
// authorized keys, instance id, entropy, clock and disk size. The script runs
// through the guest agent when the machine has one (exec), else over SSH with
// the template's key. Afterwards only the clone's own key is accepted; it
// returns a connection made with that key, checked to see the new hostname
// and machine id.
func (p *Pool) Reidentify(ctx context.Context, inst *store.Instance, m driver.Machine, exec driver.GuestExec, userKey string) (*sshx.Client, error) {
	snap, err := Load(inst.Spec.Warm)
	if err != nil {
		return nil, fmt.Errorf("warm snapshot: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	t := p.opts.Target(inst, m, snap.HostKeyPublic)
	if t.Addr == "" {
		return nil, errors.New("no SSH endpoint")
	}
	priv, err := os.ReadFile(inst.Path(store.HostKeyFile))
	if err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(inst.Path(store.HostKeyPubFile))
	if err != nil {
		return nil, err
	}
	iid, err := os.ReadFile(inst.Path(store.InstanceIDFile))
	if err != nil {
		return nil, err
	}
	random := make([]byte, 80)
	rand.Read(random)
	machineID := cloudinit.NewMachineID(random[64:])
	script, err := cloudinit.ReidentifyScript(cloudinit.Identity{
		Hostname: inst.Spec.Name, OldHostname: snap.Hostname, User: inst.Spec.User, AuthorizedKeys: cloudinit.AuthorizedKeys(userKey, inst.Spec.SSHKeys),
		HostKeyPrivate: string(priv), HostKeyPublic: string(pub), MachineID: machineID,
		InstanceID: strings.TrimSpace(string(iid)), OldInstanceID: snap.InstanceID, Entropy: random[:64], Now: time.Now(), SetClock: m.Info().ClockStale,
		GrowDisk: inst.Spec.DiskBytes > snap.DiskBytes,
	})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	var tConn time.Duration
	via := "guest agent"
	out, err := runViaAgent(ctx, exec, script)
	if err != nil {
		if exec != nil {
			p.opts.Log.Info("re-identify through the guest agent failed: over SSH", "vm", inst.Spec.Name, "err", err)
		}
		via = "ssh"
		cl, cerr := sshx.WaitReady(ctx, t, nil)
		if cerr != nil {
			return nil, fmt.Errorf("reach the clone with the template's key: %w", cerr)
		}
		tConn = time.Since(t0)
		out, err = runOverSSH(ctx, cl, script)
		cl.Close()
	}
	if err != nil {
		return nil, err
	}
	// What counts is the outcome, checked over the clone's own key: its
	// hostname and machine id are the new ones (the template's key is gone).
	tScript := time.Since(t0) - tConn
	t2 := time.Now()
	var own *sshx.Client
	for { // sshd restarts without blocking: until it has, the old key may still answer
		own, err = sshx.WaitReady(ctx, p.opts.Target(inst, m, ""), nil)
		if err == nil || !errors.Is(err, sshx.ErrHostKeyMismatch) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("the clone's own key after re-identification: %w", err)
	}
	var check bytes.Buffer
	st, err := own.Exec(ctx, "hostname; cat /etc/machine-id", nil, &check, nil)
	got := strings.Fields(check.String())
	if err != nil || st != 0 || len(got) != 2 || got[0] != inst.Spec.Name || got[1] != machineID {
		own.Close()
		return nil, fmt.Errorf("re-identification did not take (%q, status %d, %v; script said %q)", got, st, err, oneLine(out))
	}
	p.opts.Log.Info("re-identified", "vm", inst.Spec.Name, "via", via, "connect", tConn.Round(time.Millisecond), "script", tScript.Round(time.Millisecond), "own-key", time.Since(t2).Round(time.Millisecond))
	return own, nil
}

// runViaAgent runs the script as root through the guest agent.
func runViaAgent(ctx context.Context, exec driver.GuestExec, script string) (string, error) {
	if exec == nil {
		return "", errors.New("no guest agent")
	}
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, st, err := exec.GuestExec(actx, []string{"/bin/bash", "-c", script})
	if err != nil || st != 0 {
		return "", fmt.Errorf("re-identify through the guest agent (status %d, %v): %s", st, err, oneLine(tail(string(out), 600)))
	}
	return string(out), nil
}

// runOverSSH runs the script as root over SSH (sudo), in the exec request
// itself, not on stdin: nothing to lose on the way.
func runOverSSH(ctx context.Context, cl *sshx.Client, script string) (string, error) {
	var out, errOut bytes.Buffer
	st, err := cl.Exec(ctx, "sudo -n bash -c "+sshx.ShellQuote(script), nil, &out, &errOut)
	if err != nil || st != 0 {
		return "", fmt.Errorf("re-identify (status %d, %v): %s %s", st, err, oneLine(out.String()), oneLine(tail(errOut.String(), 600)))
	}
	return out.String(), nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
