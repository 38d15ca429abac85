package warm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/sshx"
)

// FuzzSnapshotInfo: whatever a warm snapshot's snapshot.json holds, the host
// reads it, lists it and, for a clone, takes the template's host key and
// instance id from it without a panic; an instance id that could break out
// of the re-identification script is refused.
func FuzzSnapshotInfo(f *testing.F) {
	_, pub, _ := sshx.GenerateEd25519()
	f.Add([]byte(`{"shape":"abc","fingerprint":"0123456789abcdef0123","backend":"qemu","image":"debian-local","base":"/c/bases/x.qcow2",` +
		`"arch":"amd64","cpus":2,"memoryMiB":2048,"user":"fvm","diskBytes":3221225472,"hostKeyPublic":"` + strings.TrimSpace(pub) +
		`","instanceID":"iid-template","createdAt":"2026-01-01T00:00:00Z","buildSeconds":80}`))
	f.Add([]byte(`{"instanceID":"x; rm -rf /","hostKeyPublic":"ssh-ed25519 AAAA\n"}`))
	f.Add([]byte(`{"cpus":-1,"diskBytes":-5,"createdAt":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, InfoFile), b, 0o600)
		info, err := Load(dir)
		if err != nil {
			return
		}
		describe(dir, info, false)
		sshx.ParsePublicKey(info.HostKeyPublic)
		_, err = cloudinit.ReidentifyScript(cloudinit.Identity{
			Hostname: "web1", User: "fvm", AuthorizedKeys: []string{strings.TrimSpace(pub)},
			HostKeyPrivate: "-----BEGIN OPENSSH PRIVATE KEY-----", HostKeyPublic: strings.TrimSpace(pub), MachineID: strings.Repeat("a", 32),
			InstanceID: "iid-web1", OldInstanceID: info.InstanceID, Entropy: make([]byte, 64), Now: time.Unix(0, 0),
		})
		if err == nil && strings.ContainsAny(info.InstanceID, " ;'\"$`\\\n/") {
			t.Fatalf("instance id %q went into the script", info.InstanceID)
		}
		if err != nil && info.InstanceID == "iid-template" {
			t.Fatalf("a good snapshot's identity is refused: %v", err)
		}
	})
}
