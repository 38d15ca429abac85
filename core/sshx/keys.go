// Package sshx is fvm's SSH side: key generation, the client that pins the host key
// fvm injected into the guest, exec and interactive shells, readiness polling, and
// the OpenSSH config that lets plain ssh, scp and editors reach a VM.
package sshx

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/fvmhq/fvm/core/store"
)

// GenerateEd25519 returns a new ed25519 key as an OpenSSH PEM private key and its
// public half as an authorized_keys line (no comment, no newline).
func GenerateEd25519() (privPEM []byte, authorizedKey string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate ed25519 key: %w", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, "", fmt.Errorf("encode ed25519 key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", fmt.Errorf("encode ed25519 key: %w", err)
	}
	return pem.EncodeToMemory(blk), AuthorizedKey(sp), nil
}

// AuthorizedKey formats a public key as one authorized_keys line without a newline.
func AuthorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// ParsePublicKey parses one authorized_keys line (options and comment allowed).
func ParsePublicKey(line string) (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("parse ssh public key %.40q: %w", line, err)
	}
	return k, nil
}

// LoadOrCreateKey loads the private key at path, creating an ed25519 key (0600, with
// path+".pub" beside it) the first time. Creation happens under a lock so two fvm
// processes starting together end up with the same key.
func LoadOrCreateKey(path string) (ssh.Signer, string, error) {
	if s, err := loadKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, authorized(s), err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", fmt.Errorf("ssh key %s: %w", path, err)
	}
	lk, err := store.Lock(path + ".lock")
	if err != nil {
		return nil, "", fmt.Errorf("ssh key %s: %w", path, err)
	}
	defer lk.Unlock()
	if s, err := loadKey(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, authorized(s), err // another process created it meanwhile
	}
	priv, pub, err := GenerateEd25519()
	if err != nil {
		return nil, "", err
	}
	// The .pub goes first: a private key on disk always has its public half beside it.
	if err := store.WriteFileAtomic(path+".pub", []byte(pub+"\n"), store.PrivateFile); err != nil {
		return nil, "", fmt.Errorf("ssh key %s.pub: %w", path, err)
	}
	if err := store.WriteFileAtomic(path, priv, 0o600); err != nil {
		return nil, "", fmt.Errorf("ssh key %s: %w", path, err)
	}
	s, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		return nil, "", fmt.Errorf("ssh key %s: %w", path, err)
	}
	return s, pub, nil
}

func authorized(s ssh.Signer) string {
	if s == nil {
		return ""
	}
	return AuthorizedKey(s.PublicKey())
}

func loadKey(path string) (ssh.Signer, error) {
	b, err := store.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("ssh key %s: %w", path, err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("ssh key %s is protected by a passphrase: fvm needs its own unencrypted key there; move it away and fvm creates a new one", path)
		}
		return nil, fmt.Errorf("ssh key %s: %w: move it away and fvm creates a new one", path, err)
	}
	// Restore a missing or stale .pub; it is derived, so rewriting it is safe.
	pub := AuthorizedKey(s.PublicKey())
	if cur, err := store.ReadFile(path + ".pub"); err != nil || !samePublicKey(string(cur), s.PublicKey()) {
		if err := store.WriteFileAtomic(path+".pub", []byte(pub+"\n"), store.PrivateFile); err != nil {
			return nil, fmt.Errorf("ssh key %s.pub: %w", path, err)
		}
	}
	return s, nil
}

func samePublicKey(line string, k ssh.PublicKey) bool {
	p, err := ParsePublicKey(line)
	return err == nil && string(p.Marshal()) == string(k.Marshal())
}

// UserPublicKeys returns the public keys in home/.ssh/*.pub as authorized_keys lines,
// sorted and without duplicates. Certificates and unreadable or malformed files are
// skipped: a stray file must not stop a VM from being created.
func UserPublicKeys(home string) []string {
	files, _ := filepath.Glob(filepath.Join(home, ".ssh", "*.pub"))
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "-cert.pub") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				continue
			}
			if _, isCert := k.(*ssh.Certificate); isCert {
				continue
			}
			id := string(k.Marshal())
			if seen[id] {
				continue
			}
			seen[id] = true
			l := AuthorizedKey(k)
			if comment != "" {
				l += " " + comment
			}
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}
