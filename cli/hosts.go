package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/remote"
)

// The host a command talks to: this machine's (over its Unix socket), or
// another machine's through the user's own OpenSSH (core/remote), picked by
// --host, --context, FVM_HOST, FVM_CONTEXT or `fvm context use`.

// contexts is the context store in the config dir.
func (a *app) contexts() remote.Contexts { return remote.Contexts{Dir: a.layout.ConfigDir} }

// selection resolves, once, which host this command talks to.
func (a *app) selection() (remote.Selection, error) {
	if a.sel != nil {
		return *a.sel, nil
	}
	sel, err := remote.Select(a.flagHost, a.flagContext, os.Getenv, a.contexts())
	if err != nil {
		return remote.Selection{}, err
	}
	a.sel = &sel
	return sel, nil
}

// remoteHost is the selected host when it is another machine's, else nil.
func (a *app) remoteHost() *remote.Host {
	sel, err := a.selection()
	if err != nil || !sel.Remote() {
		return nil
	}
	return sel.Host
}

// transport is the SSH transport to a remote host, with its shared
// connection's socket in this machine's run dir.
func (a *app) transport(h remote.Host) (*remote.SSH, error) {
	if err := a.layout.EnsureRunDir(); err != nil {
		return nil, fmt.Errorf("run dir %s: %w", a.layout.RunDir, err)
	}
	return remote.Transport(h, a.layout.RunDir, Version)
}

// remoteClient connects to a remote host (which `fvm system dial-stdio`
// there starts on demand).
func (a *app) remoteClient(ctx context.Context, sel remote.Selection) (*client.Client, error) {
	if err := a.layout.EnsureRunDir(); err != nil {
		return nil, fmt.Errorf("run dir %s: %w", a.layout.RunDir, err)
	}
	c, _, err := remote.NewClient(*sel.Host, a.layout.RunDir, Version)
	if err != nil {
		return nil, err
	}
	info, err := c.Ping(ctx, 2*time.Minute)
	var ve *client.VersionError
	if err != nil && !errors.As(err, &ve) {
		return nil, err
	}
	if err == nil {
		a.hostInfo = &info
		a.conn = c
	}
	return c, err
}

// hostLine says which host answered and its version, for status, check and version.
func (a *app) hostLine() string {
	sel, _ := a.selection()
	where := sel.Label()
	if a.hostInfo == nil {
		return where
	}
	s := fmt.Sprintf("%s: fvm %s", where, a.hostInfo.Version)
	if sel.Remote() && a.hostInfo.Hostname != "" {
		s += " on " + a.hostInfo.Hostname
	}
	return s + fmt.Sprintf(", API revision %d (pid %d)", a.hostInfo.APIRevision, a.hostInfo.PID)
}
