package sshx

import (
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzKnownHostsLine: the known_hosts line fvm writes from a VM's public host
// key file (read back from its directory, whatever it holds) is one line, and
// for a real key one that OpenSSH's format parses back to that key and alias.
func FuzzKnownHostsLine(f *testing.F) {
	_, pub, _ := GenerateEd25519()
	f.Add(pub + " root@web1\n")
	f.Add("ssh-ed25519\nAAAA evil\n@cert-authority * ssh-rsa AAAA")
	f.Add("")
	f.Add("   \n")
	f.Fuzz(func(t *testing.T, hostKey string) {
		line := KnownHostsLine("web1.fvm", hostKey)
		if strings.ContainsAny(line, "\n\r") {
			t.Fatalf("known_hosts line %q spans lines", line)
		}
		k, err := ParsePublicKey(hostKey)
		if err != nil {
			return
		}
		_, hosts, got, _, _, err := ssh.ParseKnownHosts([]byte(line + "\n"))
		if err != nil || len(hosts) != 1 || hosts[0] != "web1.fvm" || string(got.Marshal()) != string(k.Marshal()) {
			t.Fatalf("known_hosts line %q does not parse back: %v %v", line, hosts, err)
		}
	})
}
