package sshx

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOpenSSHWithConfig runs the real OpenSSH client with the block SSHConfig prints
// and the known_hosts line KnownHostsLine writes, against the in-process server:
// strict host-key checking must accept the pinned key and refuse another.
func TestOpenSSHWithConfig(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("OpenSSH client not installed")
	}
	s := newTestServer(t)
	dir := filepath.Join(t.TempDir(), "with space")
	os.MkdirAll(dir, 0o700)
	key := filepath.Join(dir, "id_ed25519")
	known := filepath.Join(dir, "known_hosts")
	cfg := filepath.Join(dir, "config")
	os.WriteFile(key, s.ClientPEM, 0o600)
	_, port, _ := net.SplitHostPort(s.Addr)
	p, _ := strconv.Atoi(port)
	os.WriteFile(cfg, []byte(SSHConfig("web1", SSHConfigInfo{
		Port: p, User: "fvm", IdentityFile: key, KnownHostsFile: known,
	})), 0o600)

	ssh := func(cmd string) (string, int) {
		c := exec.Command(sshBin, "-F", cfg, "-o", "BatchMode=yes", "web1.fvm", cmd)
		c.Env = append(os.Environ(), "HOME="+dir) // keep the user's ~/.ssh out of it
		out, _ := c.CombinedOutput()
		return string(out), c.ProcessState.ExitCode()
	}

	os.WriteFile(known, []byte(KnownHostsLine(HostAlias("web1"), s.HostKey)+"\n"), 0o600)
	if out, code := ssh("echo via openssh"); code != 0 || out != "via openssh\n" {
		t.Fatalf("pinned key: exit %d, output %q", code, out)
	}
	if out, code := ssh("fail 4"); code != 4 || !strings.Contains(out, "failed") {
		t.Fatalf("exit %d, output %q", code, out)
	}

	other := AuthorizedKey(newSigner(t).PublicKey())
	os.WriteFile(known, []byte(KnownHostsLine(HostAlias("web1"), other)+"\n"), 0o600)
	if out, code := ssh("echo should not run"); code != 255 || strings.Contains(out, "should not run") {
		t.Fatalf("another key accepted: exit %d, output %q", code, out)
	}
}

// TestOpenSSHMux: with MuxDir, the second and third ssh runs reuse the first's
// connection (one handshake), host key still pinned.
func TestOpenSSHMux(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("OpenSSH client not installed")
	}
	s := newTestServer(t)
	dir, err := os.MkdirTemp("", "mux") // short: the control socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	key, known, cfg := filepath.Join(dir, "id"), filepath.Join(dir, "known"), filepath.Join(dir, "config")
	os.WriteFile(key, s.ClientPEM, 0o600)
	os.WriteFile(known, []byte(KnownHostsLine(HostAlias("web1"), s.HostKey)+"\n"), 0o600)
	_, port, _ := net.SplitHostPort(s.Addr)
	p, _ := strconv.Atoi(port)
	block := SSHConfig("web1", SSHConfigInfo{Port: p, User: "fvm", IdentityFile: key, KnownHostsFile: known, MuxDir: dir})
	if !strings.Contains(block, "ControlMaster auto") || !strings.Contains(block, "ControlPath "+dir+"/ssh-%C") {
		t.Fatalf("config block:\n%s", block)
	}
	os.WriteFile(cfg, []byte(block), 0o600)
	run := func(args ...string) (string, int) {
		c := exec.Command(sshBin, append([]string{"-F", cfg, "-o", "BatchMode=yes"}, args...)...)
		c.Env = append(os.Environ(), "HOME="+dir)
		out, _ := c.CombinedOutput()
		return string(out), c.ProcessState.ExitCode()
	}
	t.Cleanup(func() { run("-O", "exit", "web1.fvm") })
	for i := 0; i < 3; i++ {
		if out, code := run("web1.fvm", "echo muxed"); code != 0 || out != "muxed\n" {
			t.Fatalf("run %d: exit %d %q", i, code, out)
		}
	}
	if n := s.Handshks.Load(); n != 1 {
		t.Fatalf("%d handshakes for 3 ssh runs, want 1 (shared connection)", n)
	}
	noMux := SSHConfig("web1", SSHConfigInfo{Port: p, User: "fvm", IdentityFile: key, KnownHostsFile: known})
	if strings.Contains(noMux, "Control") {
		t.Fatalf("--no-mux block has Control lines:\n%s", noMux)
	}
}
