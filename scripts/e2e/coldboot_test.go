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
	out := strings.Fields(mustFVM(t, "exec", name, "--", "systemctl show -P ActiveEnterTimestampMonotonic \"user@$(id -u).service\"; systemctl show -P ExecMainStartTimestampMonotonic cloud-config.service"))
	if len(out) != 2 {
		t.Fatalf("%s: the user's manager and cloud-config's start: %q", name, out)
	}
	user, _ := strconv.ParseInt(out[0], 10, 64)
	config, _ := strconv.ParseInt(out[1], 10, 64)
	if user == 0 || config < user {
		t.Errorf("%s: cloud-init's config stage began at %d µs, the user's manager was up at %d µs: it should wait for it", name, config, user)
	}
}
