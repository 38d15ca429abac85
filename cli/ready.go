package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
)

// waitReady waits, through the host, until the VM's SSH answers, printing the
// phases (t0: when the whole command began, for the total), then with
// cloudInit until cloud-init finished in the guest. A host too old to wait is
// waited for with a direct SSH connection (SSH only).
func (a *app) waitReady(ctx context.Context, c *client.Client, v api.VM, t0 time.Time, cloudInit bool) error {
	name := v.Spec.Name
	sctx, cancel := context.WithTimeout(ctx, sshReadyTimeout)
	defer cancel()
	t1 := time.Now()
	if v.SSHPort != 0 {
		a.phase("Waiting for SSH on 127.0.0.1:%d", v.SSHPort)
	} else {
		a.phase("Waiting for SSH")
	}
	_, err := c.Wait(sctx, name, api.WaitRequest{For: api.WaitSSH})
	if errors.Is(err, client.ErrOlderHost) {
		t, terr := sshTarget(sctx, c, name)
		if terr != nil {
			return terr
		}
		cl, werr := waitSSH(sctx, t)
		if werr == nil {
			cl.Close()
		}
		err = werr
	}
	if err != nil && sctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		return fmt.Errorf("vm %q: SSH did not answer within %s (boot log: `fvm logs %s`; it may still come up: `fvm wait %s`)", name, sshReadyTimeout, name, name)
	}
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeConflict {
		return err // the host's own sentence, naming the VM (not running, network down)
	}
	if err != nil {
		return fmt.Errorf("vm %q: ssh not ready: %w (boot log: `fvm logs %s`)", name, err, name)
	}
	a.phase("SSH ready in %s (total %s)", since(t1), since(t0))
	if !cloudInit {
		return nil
	}
	return a.waitCloudInit(ctx, c, name)
}

// waitCloudInit waits until cloud-init finished in the guest and says how it went.
func (a *app) waitCloudInit(ctx context.Context, c *client.Client, name string) error {
	t := time.Now()
	a.phase("Waiting for cloud-init (user-data, packages) in %s", name)
	r, err := c.Wait(ctx, name, api.WaitRequest{For: api.WaitCloudInit})
	if err != nil {
		return err
	}
	switch r.Status {
	case "done":
		who := "cloud-init"
		if r.Detail == "fvm-init" { // fvm's image booted by fvm: its own first-boot setup
			who = "fvm-init"
		}
		a.phase("%s done in %s", who, since(t))
	case "none":
		a.phase("%s", r.Detail)
	case "degraded":
		a.phase("cloud-init finished with warnings in %s: %s", since(t), oneLine(r.Detail))
	default:
		if strings.Contains(r.Detail, "(fvm-init)") {
			return fmt.Errorf("vm %q: fvm-init failed: %s (details: `fvm exec %s -- journalctl -b -u fvm-init -u fvm-net -u fvm-final`)", name, oneLine(r.Detail), name)
		}
		return fmt.Errorf("vm %q: cloud-init failed: %s (details: `fvm exec %s -- sudo cloud-init status --long`)", name, oneLine(r.Detail), name)
	}
	return nil
}

// oneLine joins a multi-line text into one line for an error or a phase.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
