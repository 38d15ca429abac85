package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
)

// client returns a client of a live host: the selected remote one (hosts.go),
// or this machine's, starting `fvm daemon` detached (in its own session,
// logging to the state dir) when the socket is absent or dead.
func (a *app) client(ctx context.Context) (*client.Client, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	sel, err := a.selection()
	if err != nil {
		return nil, err
	}
	if sel.Remote() {
		return a.remoteClient(ctx, sel)
	}
	c, err := a.localClient(ctx)
	if err == nil {
		a.conn = c
	}
	return c, err
}

func (a *app) localClient(ctx context.Context) (*client.Client, error) {
	c := client.New(a.layout.SocketPath())
	c.Version = Version
	info, err := c.Ping(ctx, 2*time.Second)
	var ve *client.VersionError
	if err == nil || errors.As(err, &ve) { // a host of another fvm: say what to do, start none
		if err == nil {
			a.hostInfo = &info
		}
		return c, err
	}
	appExited, err := a.startHostOrApp()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		var info api.HostInfo
		if info, last = c.Ping(ctx, time.Second); last == nil || errors.As(last, &ve) {
			if last == nil {
				a.hostInfo = &info
			}
			return c, last
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		select {
		case <-appExited: // the app ended without serving (see daemon.log): a headless host instead
			appExited = nil
			if err := a.startHost(); err != nil {
				return nil, err
			}
		default:
		}
		time.Sleep(100 * time.Millisecond)
	}
	msg := strings.ReplaceAll(tail(a.layout.DaemonLog(), 1), "\n", " ")
	return nil, fmt.Errorf("the fvm host did not come up on %s (%v): %s; full log: %s", c.Socket(), last, msg, a.layout.DaemonLog())
}

// startHostOrApp starts the host this machine should have (hostToStart):
// the menu-bar app, whose exit before it serves is signalled on appExited,
// or `fvm daemon` (appExited is then nil).
func (a *app) startHostOrApp() (appExited <-chan struct{}, err error) {
	choice := hostToStart()
	if choice.App == "" {
		if choice.Why != "" {
			a.phase("Note: %s", choice.Why)
		}
		return nil, a.startHost()
	}
	if err := a.layout.EnsureRunDir(); err != nil {
		return nil, fmt.Errorf("run dir %s: %w", a.layout.RunDir, err)
	}
	logf, err := os.OpenFile(a.layout.DaemonLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("daemon log: %w", err)
	}
	defer logf.Close()
	proc.NoInheritFDs()
	cmd := appCommand(choice.App, os.Environ(), logf)
	if err := cmd.Start(); err != nil {
		return nil, a.startHost() // the app cannot run here: fvm daemon hosts instead
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	return exited, nil
}

func (a *app) startHost() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := a.layout.EnsureRunDir(); err != nil {
		return fmt.Errorf("run dir %s: %w", a.layout.RunDir, err)
	}
	logf, err := os.OpenFile(a.layout.DaemonLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("daemon log: %w", err)
	}
	defer logf.Close()
	proc.NoInheritFDs() // the detached host must not keep our caller's descriptors open
	cmd := exec.Command(exe, "daemon")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive this terminal
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start fvm daemon: %w", err)
	}
	// Reap it if it dies at once (e.g. another host won the race), without blocking.
	go cmd.Wait()
	return nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := store.ReadTail(path, 64<<10)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
