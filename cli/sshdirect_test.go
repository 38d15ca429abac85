package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestLoadPrivateKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	write := func(name string, b *pem.Block) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(b), 0o600)
		return p
	}
	plain, _ := ssh.MarshalPrivateKey(priv, "")
	locked, _ := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("s3cret"))
	pub, _ := ssh.NewPublicKey(priv.Public())
	p := write("id", plain)
	s, err := loadPrivateKey(p, nil)
	if err != nil || string(s.PublicKey().Marshal()) != string(pub.Marshal()) {
		t.Fatalf("plain key: %v", err)
	}
	l := write("locked", locked)
	if _, err := loadPrivateKey(l, nil); err == nil || !strings.Contains(err.Error(), "passphrase") || !strings.Contains(err.Error(), "terminal") {
		t.Errorf("a locked key without a terminal: %v", err)
	}
	asked := 0
	s, err = loadPrivateKey(l, func() ([]byte, error) { asked++; return []byte("s3cret"), nil })
	if err != nil || asked != 1 || string(s.PublicKey().Marshal()) != string(pub.Marshal()) {
		t.Errorf("a locked key with its passphrase: %v (asked %d)", err, asked)
	}
	pubFile := filepath.Join(dir, "id.pub")
	os.WriteFile(pubFile, ssh.MarshalAuthorizedKey(pub), 0o644)
	if _, err := loadPrivateKey(pubFile, nil); err == nil || !strings.Contains(err.Error(), "not a private key") {
		t.Errorf("a .pub: %v", err)
	}
	if _, err := loadPrivateKey(filepath.Join(dir, "none"), nil); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("a missing file: %v", err)
	}
}
