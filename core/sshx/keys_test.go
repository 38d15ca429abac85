package sshx

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestGenerateEd25519(t *testing.T) {
	priv, pub, err := GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(priv), "-----BEGIN OPENSSH PRIVATE KEY-----\n") || !strings.HasSuffix(string(priv), "-----END OPENSSH PRIVATE KEY-----\n") {
		t.Fatalf("not an OpenSSH PEM key:\n%s", priv)
	}
	s, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub, "ssh-ed25519 ") || strings.ContainsAny(pub, "\n") || AuthorizedKey(s.PublicKey()) != pub {
		t.Fatalf("public %q does not match the private key", pub)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ssh", "id_ed25519")
	s1, pub1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, path + ".pub": 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode(), want)
		}
	}
	if b, _ := os.ReadFile(path + ".pub"); string(b) != pub1+"\n" {
		t.Errorf(".pub = %q, want %q", b, pub1)
	}

	s2, pub2, err := LoadOrCreateKey(path)
	if err != nil || pub2 != pub1 || string(s2.PublicKey().Marshal()) != string(s1.PublicKey().Marshal()) {
		t.Fatalf("reload gave another key (%v)", err)
	}

	// A lost .pub is restored from the private key.
	os.Remove(path + ".pub")
	if _, _, err := LoadOrCreateKey(path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path + ".pub"); string(b) != pub1+"\n" {
		t.Errorf("restored .pub = %q", b)
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id_ed25519")
	var wg sync.WaitGroup
	pubs := make([]string, 8)
	for i := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, pub, err := LoadOrCreateKey(path)
			if err != nil {
				t.Error(err)
			}
			pubs[i] = pub
		}()
	}
	wg.Wait()
	for _, p := range pubs {
		if p != pubs[0] {
			t.Fatalf("concurrent callers got different keys: %q", pubs)
		}
	}
}

// encryptedKey is an ed25519 key with passphrase "secret", made with ssh-keygen
// (a literal: encrypting one at test time costs seconds of bcrypt under -race).
const encryptedKey = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABAGUL9haJ
YDtjpiHSn1CRyLAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAILeGo5cP5N2srTHo
1PcnqCTIeTYJqcDgiosibDXrFC4cAAAAkA1X0glGyKqTBfuz45neSuRtxa5ic2TQ5uUftp
ccQKwaSSYJsi8dH0j3GqwZzRYUIyET/pRBZlpNwgasxuTz/zWYUfH/unxA95C3m78h+smM
dcOGdKWRELLf5lnOT3Qt+aGnDtN35g5GEkdxOE6Elo4umEbwBqT9H35J2pi/MwMVmuHgw0
ADzzDdtvo/8I7hjw==
-----END OPENSSH PRIVATE KEY-----
`

func TestLoadOrCreateKeyRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	if _, _, err := LoadOrCreateKey(garbage); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("garbage key: %v", err)
	}

	locked := filepath.Join(dir, "locked")
	os.WriteFile(locked, []byte(encryptedKey), 0o600)
	if _, _, err := LoadOrCreateKey(locked); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Errorf("passphrase key: %v", err)
	}
	if b, _ := os.ReadFile(locked); !strings.Contains(string(b), "OPENSSH PRIVATE KEY") {
		t.Error("the user's key was overwritten")
	}
}

func TestUserPublicKeys(t *testing.T) {
	home := t.TempDir()
	sshDir := filepath.Join(home, ".ssh")
	os.Mkdir(sshDir, 0o700)
	_, a, _ := GenerateEd25519()
	_, b, _ := GenerateEd25519()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(sshDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("id_ed25519.pub", a+" me@laptop\n")
	write("work.pub", "\n# comment\n"+b+"\n")
	write("copy.pub", a+" duplicate\n") // same key again
	write("garbage.pub", "hello\n")
	write("id_ed25519", "private, not a .pub")
	// A certificate is not a key to authorize.
	signer := newSigner(t)
	pk, _ := ParsePublicKey(b)
	cert := &ssh.Certificate{Key: pk, CertType: ssh.UserCert, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	write("id_work-cert.pub", string(ssh.MarshalAuthorizedKey(cert)))
	write("renamed.pub", string(ssh.MarshalAuthorizedKey(cert)))

	got := UserPublicKeys(home)
	if len(got) != 2 {
		t.Fatalf("got %q, want the two distinct keys", got)
	}
	joined := strings.Join(got, "\n")
	if !strings.Contains(joined, a) || !strings.Contains(joined, b) {
		t.Fatalf("got %q", got)
	}
	if UserPublicKeys(filepath.Join(home, "nowhere")) != nil {
		t.Error("keys from a missing directory")
	}
}
