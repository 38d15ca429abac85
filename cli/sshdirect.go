package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/sshx"
)

// `fvm ssh NAME --user U --key FILE`, the original tool's form: another guest
// user or key than fvm's, over an SSH connection of this process's own (the
// host's held connection is fvm's user with fvm's key), still checking the
// VM's pinned host key.

// directSSH runs command (a login shell when empty) in the running VM as user
// (fvm's user when "") with the private key in keyFile (fvm's when "").
func (a *app) directSSH(ctx context.Context, c *client.Client, name, command, user, keyFile string) (int, error) {
	t, err := sshTarget(ctx, c, name)
	if err != nil {
		return 0, err
	}
	if user != "" {
		t.User = user
	}
	if keyFile != "" {
		if t.Signer, err = loadPrivateKey(keyFile, askPassphrase(keyFile)); err != nil {
			return 0, err
		}
	}
	cl, err := sshx.Dial(ctx, t) // once: a refused user or key is an answer, not a guest still booting
	if err != nil {
		return 0, fmt.Errorf("ssh %s@%s: %w", t.User, name, err)
	}
	defer cl.Close()
	return cl.Shell(ctx, stdinFile(), a.out, a.errOut, command)
}

// loadPrivateKey reads an OpenSSH or PEM private key, asking for its
// passphrase (passphrase, nil when none can be asked) if it has one.
func loadPrivateKey(path string, passphrase func() ([]byte, error)) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w", path, err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == nil {
			return nil, fmt.Errorf("--key %s has a passphrase and there is no terminal to ask it on: use a key without one, or run this in a terminal", path)
		}
		pw, perr := passphrase()
		if perr != nil {
			return nil, fmt.Errorf("--key %s: passphrase: %w", path, perr)
		}
		s, err = ssh.ParsePrivateKeyWithPassphrase(b, pw)
	}
	if err != nil {
		if strings.Contains(err.Error(), "no key found") {
			return nil, fmt.Errorf("--key %s is not a private key (give the key, not its .pub)", path)
		}
		return nil, fmt.Errorf("--key %s: %w", path, err)
	}
	return s, nil
}

// askPassphrase asks on the terminal, nil without one.
func askPassphrase(path string) func() ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	return func() ([]byte, error) {
		fmt.Fprintf(os.Stderr, "Passphrase for %s: ", path)
		defer fmt.Fprintln(os.Stderr)
		return term.ReadPassword(fd)
	}
}
