package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// sshReadyTimeout bounds the wait for a booting guest's SSH; TCG boots take ~1 min.
const sshReadyTimeout = 10 * time.Minute

// waitSSH waits until the VM's SSH server accepts us, or sshReadyTimeout passes.
func waitSSH(ctx context.Context, t sshx.Target) (*sshx.Client, error) {
	wctx, cancel := context.WithTimeout(ctx, sshReadyTimeout)
	defer cancel()
	return sshx.WaitReady(wctx, t, nil)
}

// sshTarget asks the host how to reach a VM and loads fvm's key for it.
func sshTarget(ctx context.Context, c *client.Client, name string) (sshx.Target, error) {
	if c.Remote() { // its port and fvm's key are that machine's
		return sshx.Target{}, fmt.Errorf("vm %s: a direct SSH connection is only made to this machine's VMs; upgrade fvm on %s", name, c.Socket())
	}
	info, err := c.SSHInfo(ctx, name)
	if err != nil {
		return sshx.Target{}, err
	}
	return targetFromInfo(info)
}

func targetFromInfo(info api.SSHInfo) (sshx.Target, error) {
	pem, err := store.ReadFile(info.IdentityFile)
	if err != nil {
		return sshx.Target{}, fmt.Errorf("fvm's ssh key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return sshx.Target{}, fmt.Errorf("fvm's ssh key %s: %w", info.IdentityFile, err)
	}
	return sshx.Target{
		Addr:    net.JoinHostPort(info.Host, strconv.Itoa(info.Port)),
		User:    info.User,
		Signer:  signer,
		HostKey: info.HostKey,
	}, nil
}

// session runs cmd (or a login shell when empty) on the VM, once its SSH answers,
// and returns its exit status. With a terminal on stdin it gets a PTY; otherwise
// stdin/stdout are plain streams.
func (a *app) session(ctx context.Context, t sshx.Target, cmd string) (int, error) {
	cl, err := waitSSH(ctx, t)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	return cl.Shell(ctx, os.Stdin, a.out, a.errOut, cmd)
}
