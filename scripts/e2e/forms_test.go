//go:build e2e

package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fvmhq/fvm/core/cloudinit"
)

// TestNICAndOriginalForms boots a VM with the original tool's command forms
// (--memory 1 --disk 20: GiB) and checks, from inside it: its NIC has the
// address fvm derived for it (not QEMU's default), fvm inspect shows that
// address with the guest's IP from the guest agent, both stay across a stop
// and start; `fvm ssh --user --key` logs in as another guest user with
// another key, over a connection of its own, checking the pinned host key.
func TestNICAndOriginalForms(t *testing.T) {
	ensureImage(t)
	t.Parallel() // a cold boot of its own, beside the other tests that have one
	const name = "nic1"
	t0 := time.Now()
	r := fvm(t, "run", "-d", "--cold", "debian-local", name, "--memory", "1", "--disk", "20")
	if r.code != 0 {
		t.Fatalf("run: %s %s", bootFailure(name), r.stderr)
	}
	defer fvm(t, "rm", "-f", name)
	t.Logf("MEASURE cold run -d → SSH: %s", time.Since(t0))
	v := inspectVM(t, name)
	if v.Spec.MemoryMiB != 1024 || v.Spec.DiskBytes != 20<<30 {
		t.Errorf("--memory 1 --disk 20 made %d MiB and %d bytes, want 1 GiB and 20 GiB", v.Spec.MemoryMiB, v.Spec.DiskBytes)
	}
	if mem, _ := strconv.Atoi(strings.TrimSpace(mustFVM(t, "exec", name, "--", "awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo"))); mem < 800 || mem > 1024 {
		t.Errorf("the guest has %d MiB of memory, want about 1 GiB", mem)
	}

	nic := func(when string) string {
		t.Helper()
		var v = inspectVM(t, name)
		for i := 0; i < 30 && (v.NIC == nil || len(v.NIC.IPs) == 0); i++ { // the guest agent starts with the guest
			time.Sleep(time.Second)
			v = inspectVM(t, name)
		}
		if v.NIC == nil {
			t.Fatalf("%s: inspect shows no NIC", when)
		}
		t.Logf("%s: NIC %+v", when, *v.NIC)
		mac := v.NIC.MAC
		if !strings.HasPrefix(mac, "52:54:00:") || mac == cloudinit.DefaultMAC {
			t.Errorf("%s: MAC %s, want one derived for the VM (not QEMU's default)", when, mac)
		}
		if !slices.Contains(v.NIC.IPs, "10.0.2.15") || v.NIC.Source != "guest-agent" {
			t.Errorf("%s: the guest agent's addresses %v (%s), want 10.0.2.15 among them", when, v.NIC.IPs, v.NIC.Source)
		}
		guest := strings.TrimSpace(mustFVM(t, "exec", name, "--", "cat /sys/class/net/$(ip -o route show default | awk '{print $5}')/address"))
		if guest != mac {
			t.Errorf("%s: the guest's NIC is %s, inspect says %s", when, guest, mac)
		}
		return mac
	}
	first := nic("first boot")
	mustFVM(t, "stop", name)
	mustFVM(t, "start", name)
	if again := nic("after stop and start"); again != first {
		t.Errorf("the MAC changed from %s to %s", first, again)
	}

	t.Run("ssh-user-key", func(t *testing.T) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(t.TempDir(), "deploy_ed25519")
		os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
		pub, _ := ssh.NewPublicKey(priv.Public())
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
		mustFVM(t, "exec", name, "--", "sudo useradd -m -s /bin/bash deploy && sudo install -d -m 700 -o deploy -g deploy ~deploy/.ssh && echo '"+line+"' | sudo install -m 600 -o deploy -g deploy /dev/stdin ~deploy/.ssh/authorized_keys")
		if got := strings.TrimSpace(mustFVM(t, "ssh", name, "--user", "deploy", "--key", key, "--", "id -un; echo $SSH_CONNECTION")); !strings.HasPrefix(got, "deploy\n") {
			t.Fatalf("ssh --user deploy --key: %q", got)
		}
		// fvm's own key is not deploy's: refused, in one line, without waiting for a boot.
		t0 := time.Now()
		r := fvm(t, "ssh", name, "--user", "deploy", "--", "true")
		if msg := strings.TrimSpace(r.stderr); r.code == 0 || strings.Count(msg, "\n") > 0 || !strings.Contains(msg, "deploy@"+name) || time.Since(t0) > 30*time.Second {
			t.Errorf("ssh --user deploy with fvm's key: %d %q in %s; want a quick one-line refusal", r.code, msg, time.Since(t0))
		}
		// Another key for fvm's own user is refused the same way (it is not authorized).
		if r := fvm(t, "ssh", name, "--key", key, "--", "true"); r.code == 0 {
			t.Error("a key not authorized for the VM's user logged in")
		}
	})

	// A boot whose network does not come up is named as such once its agent
	// answered, not waited on for 10 minutes. The guest gets what a NIC-name
	// race once gave it under cloud-init (a network config naming eth0, which
	// udev has renamed: ifupdown fails, the NIC gets no address); under
	// fvm-init, whose fvm-net sets the address itself at each boot, fvm-net
	// is disabled (the image's own unit: it cannot be masked) and ifupdown
	// masked.
	t.Run("network-down-is-named", func(t *testing.T) {
		fullOnly(t, "a cold boot with the network down and the 30 s wait, about 80 s on the longest parallel test")
		mustFVM(t, "exec", name, "--", "printf 'auto eth0\\niface eth0 inet dhcp\\n' | sudo tee /etc/network/interfaces.d/50-cloud-init > /dev/null; [ ! -e /run/fvm/init ] || { sudo systemctl disable -q fvm-net.service && sudo systemctl mask -q networking.service; }")
		mustFVM(t, "stop", name)
		t0 := time.Now()
		r := fvm(t, "start", name)
		took := time.Since(t0)
		msg := strings.TrimSpace(r.stderr)
		last := msg[strings.LastIndex(msg, "\n")+1:]
		if r.code == 0 || !strings.Contains(last, "network is down") || !strings.Contains(last, "no IPv4") || !strings.Contains(last, "fvm logs "+name) {
			t.Fatalf("start with the network down: %d %q; want its last line to name the down network", r.code, msg)
		}
		t.Logf("MEASURE start → the down network named: %s", took)
		if took > 4*time.Minute {
			t.Errorf("the down network was named after %s", took)
		}
		// The VM stays for its user to look at.
		if v := inspectVM(t, name); v.State != "running" {
			t.Errorf("after the diagnosis the VM is %s, want running", v.State)
		}
	})
}
