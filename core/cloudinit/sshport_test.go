package cloudinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestUserDataSSHPort: with SSHPort the seed installs and starts the unit that
// serves sshd on the port (checked by running the bootcmd in a real shell with
// systemctl stubbed); without it, nothing of that.
func TestUserDataSSHPort(t *testing.T) {
	c := testConfig(t)
	plain, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain), SSHPortUnit) {
		t.Fatalf("user-data without SSHPort installs the unit:\n%s", plain)
	}
	c.SSHPort = "org.fvm.ssh.0"
	b, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Bootcmd [][]string `yaml:"bootcmd"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(doc.Bootcmd) != 1 || len(doc.Bootcmd[0]) != 3 {
		t.Fatalf("bootcmd %q", doc.Bootcmd)
	}
	cmd := doc.Bootcmd[0][2]

	// Run it against a fake root: the device, the unit dir and systemctl.
	root := t.TempDir()
	for _, d := range []string{"dev/virtio-ports", "etc/systemd/system", "bin"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	log := filepath.Join(root, "systemctl.log")
	os.WriteFile(filepath.Join(root, "bin/systemctl"), []byte("#!/bin/sh\necho \"$*\" >> "+log+"\n"), 0o755)
	run := func() string {
		t.Helper()
		sh := strings.ReplaceAll(cmd, "[ -e /dev/", "[ -e "+root+"/dev/")
		sh = strings.ReplaceAll(sh, "> /etc/", "> "+root+"/etc/")
		sh = strings.ReplaceAll(sh, "[ -e /etc/", "[ -e "+root+"/etc/")
		out, err := exec.Command("sh", "-c", sh).CombinedOutput()
		if err != nil {
			t.Fatalf("bootcmd: %v\n%s\n%s", err, out, sh)
		}
		l, _ := os.ReadFile(log)
		os.Remove(log)
		return string(l)
	}
	t.Setenv("PATH", filepath.Join(root, "bin")+":"+os.Getenv("PATH"))
	if got := run(); got != "" {
		t.Fatalf("no port, yet systemctl ran: %q", got)
	}
	os.WriteFile(filepath.Join(root, "dev/virtio-ports/org.fvm.ssh.0"), nil, 0o600)
	if got := run(); got != "daemon-reload\nenable "+SSHPortUnit+"\nstart --no-block "+SSHPortUnit+"\n" {
		t.Fatalf("first boot ran systemctl %q", got)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", SSHPortUnit))
	if err != nil {
		t.Fatal(err)
	}
	if string(unit) != sshPortUnit("org.fvm.ssh.0") {
		t.Fatalf("unit written as\n%s\nwant\n%s", unit, sshPortUnit("org.fvm.ssh.0"))
	}
	for _, want := range []string{"StandardInput=file:/dev/virtio-ports/org.fvm.ssh.0", "StandardOutput=file:/dev/virtio-ports/org.fvm.ssh.0", "ExecStart=/usr/sbin/sshd -i", "Restart=always"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	if got := run(); got != "start --no-block "+SSHPortUnit+"\n" { // later boots: installed already
		t.Fatalf("later boot ran systemctl %q", got)
	}

	c.SSHPort = "a b;rm -rf /"
	if _, err := UserData(c); err == nil || !strings.Contains(err.Error(), "SSH port name") {
		t.Fatalf("a bad port name: %v", err)
	}
}
