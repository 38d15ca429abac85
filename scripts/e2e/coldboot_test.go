//go:build e2e

package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/api"
)

// coldBootWaits checks what a cold boot of fvm's image waits for, and what
// not: the host tried SSH once the guest agent answered (a phase of its
// start), so the guest started no sshd for an attempt made before its
// network was up (each is closed at once: "preauth" in sshd's log); and
// cloud-init's config stage began once the user's manager was up, which the
// first login waits for.
func coldBootWaits(t *testing.T, name string) {
	t.Helper()
	var v api.VM
	if err := json.Unmarshal([]byte(mustFVM(t, "inspect", name)), &v); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range v.LastStart.Phases {
		names = append(names, p.Name)
		t.Logf("MEASURE %s start phase %s: %.3f s", name, p.Name, p.Seconds)
	}
	if got := strings.Join(names, ","); got != "hypervisor,agent-ready,first-ssh" {
		t.Errorf("%s: cold boot phases %s, want hypervisor,agent-ready,first-ssh", name, got)
	}
	if out := mustFVM(t, "exec", name, "--", "sudo journalctl -b --no-pager -o cat | grep 'preauth' || true"); strings.TrimSpace(out) != "" {
		t.Errorf("%s: the guest served SSH attempts the host had given up on:\n%s", name, out)
	}
	// The stage that comes after the login: cloud-init's config stage, or
	// fvm-init's growpart (fvm-final) where fvm booted its image directly.
	out := strings.Fields(mustFVM(t, "exec", name, "--", "u=cloud-config.service; [ ! -e /run/fvm/init ] || u=fvm-final.service; systemctl show -P ActiveEnterTimestampMonotonic \"user@$(id -u).service\"; systemctl show -P ExecMainStartTimestampMonotonic $u"))
	if len(out) != 2 {
		t.Fatalf("%s: the user's manager and cloud-config's start: %q", name, out)
	}
	user, _ := strconv.ParseInt(out[0], 10, 64)
	config, _ := strconv.ParseInt(out[1], 10, 64)
	if user == 0 || config < user {
		t.Errorf("%s: cloud-init's config stage (fvm-final with fvm-init) began at %d µs, the user's manager was up at %d µs: it should wait for it", name, config, user)
	}
}

// firstBootClean checks that the VM's first-boot setup applied cleanly:
// fvm-init's units, where fvm booted its image directly (cloud-init then
// says "disabled"), else cloud-init's "done".
func firstBootClean(t *testing.T, name string) {
	t.Helper()
	out := mustFVM(t, "exec", name, "--", `if [ -e /run/fvm/init ]; then echo fvm-init; fvm=1; fi
s=$(cloud-init status --wait | tail -n 1); echo "$s"
[ -z "${fvm:-}" ] || { while [ "$(systemctl is-active fvm-final.service)" = activating ]; do sleep 0.5; done; systemctl is-active fvm-init.service fvm-net.service fvm-final.service | tr '\n' ' '
  sudo -n passwd -S "$USER" | cut -d' ' -f2; ls /etc/ssh/ | grep -c '^ssh_host_'
  ip -4 route show default | cut -d' ' -f3; grep -c '^nameserver 10.0.2.3$' /etc/resolv.conf; pgrep -c dhclient || true; grep -c 'inet static' /etc/network/interfaces.d/50-fvm
  tr '\0' ' ' < "/proc/$(systemctl show -p MainPID --value qemu-guest-agent.service)/cmdline" | grep -c -- '--path=/dev/vport' || true
  a=/run/user/$(id -u)/openssh_agent; systemctl --user show-environment | grep -cx "SSH_AUTH_SOCK=$a" || true; SSH_AUTH_SOCK=$a ssh-add -l >/dev/null 2>&1; echo "$?"; }`)
	f := strings.Fields(out)
	switch {
	case len(f) > 0 && f[0] == "fvm-init":
		// The password locked (no password login), the seed's host key the
		// only one, the address fvm.net= gave set by fvm-net with no DHCP,
		// the guest agent on its port's kernel node (not udev's link), the
		// user's manager with SSH_AUTH_SOCK naming its ssh-agent socket, which
		// answers (ssh-add -l: 1, no identities; 2 is no agent).
		if got := strings.Join(f[1:], " "); got != "status: disabled active active active L 2 10.0.2.2 1 0 1 1 1 1" {
			t.Fatalf("%s: fvm-init's boot: cloud-init, fvm-init's units, the password, the host keys, the network, the agent and the user's ssh-agent say %q, want cloud-init disabled, the three units active, the password locked (L), one host key pair, the default route via 10.0.2.2, QEMU's DNS in resolv.conf, no dhclient, a static stanza, the agent on /dev/vport*, SSH_AUTH_SOCK in the user's manager and its agent answering\n%s", name, got,
				fvm(t, "exec", name, "--", "sudo journalctl -b --no-pager -o cat -u fvm-init -u fvm-net -u fvm-final | tail -20").stdout)
		}
	case !strings.Contains(out, "done"):
		t.Fatalf("%s: cloud-init: %s\n%s", name, out, fvm(t, "exec", name, "sudo", "cloud-init", "status", "--long").stdout)
	}
}
