package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/vm"
)

// ISO installs are a `create` feature only: `run` opens a shell as soon as SSH
// answers, and an installer has no SSH for fvm until it has installed a system
// (interactively through the display, or unattended, which takes minutes).

// registerInstall adds the installer flags (create only).
func (f *vmFlags) registerInstall(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.iso, "iso", "", "boot this installer ISO with an empty disk of --disk and a display, instead of an image")
	fl.BoolVar(&f.autoInstall, "auto-install", false, "install unattended with an autoinstall seed (Ubuntu server ISOs): user, SSH keys, pinned host key")
}

// installSource fills the spec's source from --iso: an absolute path to an existing
// file; the positional arguments are then [ARCH] [NAME], without IMAGE.
func (f *vmFlags) installSource(args []string) (vm.Spec, []string, error) {
	if f.iso == "" {
		return vm.Spec{}, nil, errors.New("--auto-install needs an installer: add --iso PATH (an Ubuntu server ISO)")
	}
	abs, err := filepath.Abs(f.iso)
	if err != nil {
		return vm.Spec{}, nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return vm.Spec{}, nil, fmt.Errorf("--iso %q: %w", f.iso, err)
	}
	if len(args) > 0 && !vm.IsArch(args[0]) && len(args) > 1 {
		return vm.Spec{}, nil, fmt.Errorf("unexpected argument %q: with --iso give [ARCH] [NAME], no image", args[0])
	}
	return vm.Spec{ISO: abs, AutoInstall: f.autoInstall, Name: f.name}, args, nil
}

// installNote tells what an ISO VM does after `create`.
func (a *app) installNote(v api.VM) {
	if v.Spec.ISO == "" {
		return
	}
	if v.Spec.AutoInstall {
		a.phase("`fvm start %s` installs unattended from %s, then boots the installed system", v.Spec.Name, filepath.Base(v.Spec.ISO))
		return
	}
	a.phase("`fvm start %s` boots the installer %s; `fvm display %s` shows its screen", v.Spec.Name, filepath.Base(v.Spec.ISO), v.Spec.Name)
}

// startInstalling handles `fvm start` of an ISO VM. An interactive installer needs the
// display, not SSH: it says where the display is and reports done (true). An
// unattended install is waited for until the installed system answers SSH.
func (a *app) startInstalling(ctx context.Context, c *client.Client, v api.VM) (done bool, err error) {
	name := v.Spec.Name
	if v.Spec.ISO == "" {
		return false, nil
	}
	if !v.Spec.AutoInstall {
		a.phase("%s: installer running; `fvm display %s` shows its screen; `fvm ssh %s` works once the installed system runs cloud-init", name, name, name)
		return true, nil
	}
	t0 := time.Now()
	a.phase("%s: waiting for the unattended install and the boot from disk (follow it with `fvm logs %s`)", name, name)
	cl, err := waitInstalled(ctx, c, name)
	if err != nil {
		return true, err
	}
	if cl != nil {
		cl.Close()
	}
	a.phase("%s: installed, SSH ready in %s", name, since(t0))
	return true, nil
}

// installStoppedGrace is how long an unattended-install VM may stay stopped before the
// wait gives up: the host boots it again from its disk right after the installer ends.
const installStoppedGrace = 30 * time.Second

// waitInstalled waits until the VM answers SSH with its pinned host key (nil
// client: a remote host's own connection answers). The SSH port
// changes when the host boots the installed system, so each round asks again; a
// host-key mismatch here is the installer's own SSH server, not yet ours.
func waitInstalled(ctx context.Context, c *client.Client, name string) (*sshx.Client, error) {
	var stopped time.Time
	for {
		v, err := c.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		switch v.State {
		case vm.Running:
			stopped = time.Time{}
			if c.Remote() { // its SSH port is on that machine's loopback: its host waits
				rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := c.Wait(rctx, name, api.WaitRequest{For: api.WaitSSH})
				cancel()
				if err == nil {
					return nil, nil
				}
			} else if t, err := sshTarget(ctx, c, name); err == nil {
				rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				cl, err := sshx.WaitReady(rctx, t, nil)
				cancel()
				if err == nil {
					return cl, nil
				}
			}
		case vm.Stopped, vm.Error:
			if stopped.IsZero() {
				stopped = time.Now()
			} else if time.Since(stopped) > installStoppedGrace {
				return nil, fmt.Errorf("vm %q stopped during its unattended install and did not come back: see `fvm logs %s`", name, name)
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// imageOf is what `fvm ps` shows as a VM's image: the ISO it was installed from, if any.
func imageOf(s vm.Spec) string {
	if s.ISO != "" {
		return "iso:" + filepath.Base(s.ISO)
	}
	if s.Blank {
		return "(blank)"
	}
	return s.Image
}
