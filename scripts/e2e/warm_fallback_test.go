//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// TestWarmCloneWithoutAgent: a clone whose guest agent does not answer (here
// stopped in the template while it booted, as in an image without one)
// still becomes itself, over SSH with the template's key, and refuses that
// key afterwards. A snapshot of a shape of its own (--cpus 1): a template boot.
func TestWarmCloneWithoutAgent(t *testing.T) {
	fullOnly(t, "a warm snapshot of its own, a template boot")
	ensureImage(t)
	built := make(chan result, 1)
	go func() { built <- fvm(t, "image", "warm", "debian-local", "--memory", "1G", "--cpus", "1") }()
	stopped := stopTemplateAgent(t, built)
	r := <-built
	if r.code != 0 {
		t.Fatalf("image warm: %+v", r)
	}
	if !stopped {
		t.Fatal("the template's guest agent was never reached to stop it")
	}
	snapDir := strings.TrimSpace(r.stdout)
	t.Cleanup(func() { os.Chmod(snapDir, 0o755); chmodTree(snapDir); os.RemoveAll(snapDir) })
	var snap struct {
		HostKeyPublic string `json:"hostKeyPublic"`
	}
	store.ReadJSON(filepath.Join(snapDir, "snapshot.json"), &snap)

	t0 := time.Now()
	r = fvm(t, "run", "-d", "debian-local", "noagent1", "--memory", "1G", "--cpus", "1")
	t.Cleanup(func() { fvm(t, "rm", "-f", "noagent1") })
	if r.code != 0 || !strings.Contains(r.stderr, "clone of its warm snapshot") || strings.Contains(r.stderr, "booted cold") {
		t.Fatalf("run: %+v", r)
	}
	t.Logf("MEASURE warm clone without a guest agent run -d → SSH: %s", time.Since(t0))
	var v api.VM
	json.Unmarshal([]byte(mustFVM(t, "inspect", "noagent1")), &v)
	if v.LastStart == nil || v.LastStart.Via != "ssh" || !strings.Contains(v.LastStart.Note, "agent") {
		t.Fatalf("last start %+v, want re-identified over SSH because the agent did not answer", v.LastStart)
	}
	if out := strings.Fields(mustFVM(t, "exec", "noagent1", "--", "hostname; systemctl is-active qemu-guest-agent || true")); len(out) != 2 || out[0] != "noagent1" || out[1] == "active" {
		t.Fatalf("inside the clone: %q", out)
	}
	if err := dialWithHostKey(t, "noagent1", snap.HostKeyPublic); !errors.Is(err, sshx.ErrHostKeyMismatch) {
		t.Errorf("with the template's host key pinned: %v, want a mismatch", err)
	}
}

// stopTemplateAgent waits for the template of a snapshot being built to
// answer on its guest agent's socket and stops the agent in it for good,
// through the agent itself (systemd-run: outside the agent's own cgroup,
// which stopping it ends).
func stopTemplateAgent(t *testing.T, built <-chan result) bool {
	t.Helper()
	for end := time.Now().Add(15 * time.Minute); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		select {
		case r := <-built:
			t.Fatalf("the snapshot was made before its template's agent could be stopped: %+v", r)
		default:
		}
		socks, _ := filepath.Glob(filepath.Join(layout.WarmDir(), ".build-*", qemu.QGASocket))
		for _, s := range socks {
			if err := agentExec(s, "/usr/bin/systemd-run", "--no-block", "--unit=fvm-test-no-agent", "/bin/systemctl", "mask", "--now", "qemu-guest-agent.service"); err == nil {
				return true
			}
		}
	}
	return false
}

// agentExec starts a program through the guest agent on socket (after the
// agent's sync handshake), without waiting for it.
func agentExec(socket string, argv ...string) error {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	send := func(v any) { b, _ := json.Marshal(v); c.Write(append(b, '\n')) }
	send(map[string]any{"execute": "guest-sync-delimited", "arguments": map[string]any{"id": 4711}})
	if _, err := r.ReadBytes(0xFF); err != nil {
		return err
	}
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return err
		}
		if strings.Contains(string(line), "4711") {
			break
		}
	}
	send(map[string]any{"execute": "guest-exec", "arguments": map[string]any{"path": argv[0], "arg": argv[1:]}})
	line, err := r.ReadBytes('\n')
	if err != nil || !strings.Contains(string(line), `"pid"`) {
		return errors.New("guest-exec: " + string(line))
	}
	return nil
}

func chmodTree(dir string) {
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { os.Chmod(p, 0o755); return nil })
}

// TestWarmCloneReidentifyFails: a clone that cannot be re-identified (here a
// snapshot whose record of the template's instance id is damaged) is given
// up and the VM boots cold from its disk, saying why, and is itself.
func TestWarmCloneReidentifyFails(t *testing.T) {
	fullOnly(t, "a clone given up and a cold boot")
	ensureImage(t)
	snapDir := strings.TrimSpace(mustFVM(t, "image", "warm", "debian-local", "--memory", "1G"))
	p := filepath.Join(snapDir, "snapshot.json")
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(orig, &m)
	m["instanceID"] = "not an instance id"
	b, _ := json.Marshal(m)
	os.Chmod(p, 0o644)
	os.WriteFile(p, b, 0o644)
	defer func() { os.WriteFile(p, orig, 0o444); os.Chmod(p, 0o444) }()

	r := fvm(t, "run", "-d", "debian-local", "failclone", "--memory", "1G")
	t.Cleanup(func() { fvm(t, "rm", "-f", "failclone") })
	if r.code != 0 || !strings.Contains(r.stderr, "could not be re-identified") || !strings.Contains(r.stderr, "bad instance id") || !strings.Contains(r.stderr, "booted cold") {
		t.Fatalf("run: want a cold boot with the reason, got %+v", r)
	}
	if got := strings.TrimSpace(mustFVM(t, "exec", "failclone", "--", "hostname")); got != "failclone" {
		t.Fatalf("hostname %q after the cold boot", got)
	}
	var v api.VM
	json.Unmarshal([]byte(mustFVM(t, "inspect", "failclone")), &v)
	if v.LastStart == nil || v.LastStart.Boot != "cold" || !strings.Contains(v.LastStart.Note, "could not be re-identified") {
		t.Errorf("last start %+v, want a cold boot with the clone's failure noted", v.LastStart)
	}
}
