//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/sshx"
)

// The libvirt backend's slow tests (FVM_E2E_FULL): qemu+ssh through a real
// OpenSSH server on 127.0.0.1, and two libvirt hosts (the system daemon and a
// second user's session daemon) for placement and --on.

const lvUser = "fvmlv2" // the second user, whose session daemon is the second host

// loopbackSSHD starts Debian's sshd on a free 127.0.0.1 port, with a host key
// and config of its own, letting root in with a key made here. It returns
// the port and the client key file.
func loopbackSSHD(t *testing.T) (int, string) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("no sshd: run scripts/setup.sh (openssh-server)")
	}
	dir := filepath.Join(lvState, "sshd")
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o700)
	hostKey := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	key := filepath.Join(dir, "client")
	if _, _, err := sshx.LoadOrCreateKey(key); err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(key + ".pub")
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	port := freePort(t)
	cfg := filepath.Join(dir, "sshd_config")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowStreamLocalForwarding yes
`, port, hostKey, dir, dir)), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 50; i++ {
		if c, err := exec.Command("ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-i", key, "-p", fmt.Sprint(port), "root@127.0.0.1", "true").CombinedOutput(); err == nil {
			return port, key
		} else if i == 49 {
			t.Fatalf("sshd on 127.0.0.1:%d does not let root in: %s", port, c)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return port, key
}

// TestLibvirtRemote: a VM on a daemon reached through qemu+ssh (the user's
// OpenSSH, virt-ssh-helper on the far side): run → exec → screen → rm.
func TestLibvirtRemote(t *testing.T) {
	fullOnly(t, "a libvirt VM over qemu+ssh, about 2 minutes")
	startLibvirtd(t)
	ensureImage(t)
	port, key := loopbackSSHD(t)
	uri := fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system?keyfile=%s&no_verify=1", port, key)
	setConfig(t, "images:\n  warm: false\nlibvirt:\n  uri: "+uri+"\n")
	t.Cleanup(func() { setConfig(t, "images:\n  warm: false\n") })
	// Its other checks may fail here (no KVM): the libvirt lines must pass.
	if r := fvm(t, "check"); !strings.Contains(r.stdout, "[ok  ] libvirt qemu+ssh://root@127.0.0.1") || strings.Contains(r.stdout, "[FAIL] libvirt") {
		t.Errorf("fvm check does not pass the libvirt connection over qemu+ssh:\n%s", r.stdout)
	}
	const name = "lvssh"
	t0 := time.Now()
	mustFVM(t, "run", "-d", "--backend", "libvirt", "--memory", "1G", "debian-local", name)
	t.Cleanup(func() { fvm(t, "rm", "-f", name) })
	t.Logf("MEASURE libvirt over qemu+ssh run -d to SSH-ready: %s", time.Since(t0))
	if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "hostname")); got != name {
		t.Fatalf("hostname %q", got)
	}
	png := filepath.Join(t.TempDir(), "s.png")
	mustFVM(t, "screenshot", name, png)
	vncGreets(t, name) // the VNC socket on the far side, through ssh -W
	mustFVM(t, "rm", "-f", name)
	if out, _ := virsh(t, "list", "--all", "--name"); strings.Contains(out, "fvm-"+name) {
		t.Errorf("domain left after rm over qemu+ssh: %s", out)
	}
}

// TestLibvirtHosts: two hosts in libvirt.hosts, the system daemon and a
// second user's session daemon. Both run on this machine, so libvirt's node
// statistics give both the same free memory: placement's choice by memory is
// checked in unit tests (TestPick); here the tie goes to the first name, --on
// overrides it, and fvm ps says which host each VM is on.
func TestLibvirtHosts(t *testing.T) {
	fullOnly(t, "two libvirt VMs on two daemons, about 3 minutes")
	startLibvirtd(t)
	ensureImage(t)
	if _, err := exec.Command("id", lvUser).Output(); err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/bash", lvUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v %s", err, out)
		}
	}
	script, _ := filepath.Abs(filepath.Join("..", "libvirtd.sh"))
	state := filepath.Join(lvState, "s")
	out, err := exec.Command(script, "start", state, lvUser).Output()
	if err != nil {
		t.Fatalf("session daemon: %v", err)
	}
	t.Cleanup(func() { exec.Command(script, "stop", state).Run() })
	session := strings.TrimSpace(string(out))
	// That daemon has no default pool: make fvm's where its user can write.
	poolDir := "/home/" + lvUser + "/fvm-pool"
	sv := func(args ...string) string {
		out, err := exec.Command("virsh", append([]string{"-q", "-c", session}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("virsh -c %s %v: %v %s", session, args, err, out)
		}
		return string(out)
	}
	if o, _ := exec.Command("virsh", "-q", "-c", session, "pool-info", "fvm").CombinedOutput(); !strings.Contains(string(o), "running") {
		sv("pool-define-as", "fvm", "dir", "--target", poolDir)
		sv("pool-build", "fvm")
		sv("pool-start", "fvm")
	}
	setConfig(t, "images:\n  warm: false\nlibvirt:\n  hosts:\n    a-system: qemu:///system\n    b-user: \""+session+"\"\n")
	t.Cleanup(func() { setConfig(t, "images:\n  warm: false\n") })

	mustFVM(t, "create", "--backend", "libvirt", "--memory", "1G", "debian-local", "lvplaced")
	t.Cleanup(func() { fvm(t, "rm", "-f", "lvplaced") })
	mustFVM(t, "run", "-d", "--backend", "libvirt", "--memory", "1G", "--on", "b-user", "debian-local", "lvon")
	t.Cleanup(func() { fvm(t, "rm", "-f", "lvon") })
	if got := strings.TrimSpace(mustFVM(t, "exec", "lvon", "--", "hostname")); got != "lvon" {
		t.Fatalf("hostname %q", got)
	}
	if !strings.Contains(sv("list", "--all", "--name"), "fvm-lvon") {
		t.Error("--on b-user did not put the VM on the session daemon")
	}
	if o, _ := virsh(t, "list", "--all", "--name"); !strings.Contains(o, "fvm-lvplaced") {
		t.Error("placement (a tie) did not pick the first host, a-system")
	}
	ps := mustFVM(t, "ps", "-a")
	if !strings.Contains(ps, "HOST") || !strings.Contains(lineOf(ps, "lvon"), "b-user") || !strings.Contains(lineOf(ps, "lvplaced"), "a-system") {
		t.Errorf("fvm ps -a:\n%s", ps)
	}
	if r := fvm(t, "create", "--backend", "libvirt", "--on", "nowhere", "debian-local", "lvnowhere"); r.code == 0 || !strings.Contains(r.stderr, "libvirt.hosts has a-system, b-user") {
		t.Errorf("--on an unknown host: %d %s", r.code, r.stderr)
	}
	if r := fvm(t, "create", "--backend", "qemu", "--on", "b-user", "debian-local", "lvqemu"); r.code == 0 || !strings.Contains(r.stderr, "--on names a libvirt host") {
		t.Errorf("--on with qemu: %d %s", r.code, r.stderr)
	}
}
