package sshx

import (
	"strings"
	"testing"
)

func TestSSHConfig(t *testing.T) {
	got := SSHConfig("web1", SSHConfigInfo{
		Port:           2222,
		User:           "fvm",
		IdentityFile:   "/Users/me/Library/Application Support/fvm/ssh/id_ed25519",
		KnownHostsFile: "/home/me/.local/share/fvm/vms/web1/known_hosts",
	})
	want := `Host web1.fvm
  HostName 127.0.0.1
  Port 2222
  User fvm
  IdentityFile "/Users/me/Library/Application Support/fvm/ssh/id_ed25519"
  IdentitiesOnly yes
  UserKnownHostsFile /home/me/.local/share/fvm/vms/web1/known_hosts
  HostKeyAlias web1.fvm
  StrictHostKeyChecking yes
  PasswordAuthentication no
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if p := configPath(`/a%b/c"d`); p != `"/a%%b/c\"d"` {
		t.Errorf("configPath = %s", p)
	}
}

func TestKnownHostsLine(t *testing.T) {
	_, pub, _ := GenerateEd25519()
	line := KnownHostsLine("web1.fvm", pub+" root@web1")
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "web1.fvm" || f[1] != "ssh-ed25519" || f[0]+" "+pub != line {
		t.Fatalf("line %q", line)
	}
}
