//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// spareReady is what `fvm image warm --spare` says when the spare is ready.
const spareReady = "A spare clone of it is ready"

// TestSpareClones: with `fvm image warm --spare` the host keeps a clone of
// the snapshot ready; `fvm run -d` is handed it, and the VM is its own
// machine as any clone is (hostname, machine id, host key pinned, vmgenid,
// instance id, clock, timers, journal, consoles), the template's key
// refused; the next spare is made after, and the next VM is distinct from
// the first; --spare=false ends it.
func TestSpareClones(t *testing.T) {
	ensureImage(t)
	shape := []string{"--memory", "1G"}
	warmArgs := append([]string{"image", "warm", "debian-local"}, shape...)
	r := fvm(t, append(warmArgs, "--spare")...)
	if r.code != 0 || !strings.Contains(r.stderr, spareReady) {
		t.Fatalf("image warm --spare: %+v", r)
	}
	t.Cleanup(func() {
		fvm(t, append(warmArgs, "--spare=false")...)
		fvm(t, "rm", "-f", "spare1", "spare2", "spare3")
	})
	var snap struct {
		HostKeyPublic string `json:"hostKeyPublic"`
		InstanceID    string `json:"instanceID"`
	}
	if err := store.ReadJSON(filepath.Join(strings.TrimSpace(r.stdout), "snapshot.json"), &snap); err != nil {
		t.Fatal(err)
	}
	ids := map[string]map[string]string{}
	for i, n := range []string{"spare1", "spare2"} {
		if i > 0 { // the next spare
			ensureSpare(t, warmArgs)
		}
		t0 := time.Now()
		r := fvm(t, append([]string{"run", "-d", "debian-local", n}, shape...)...)
		if r.code != 0 || !strings.Contains(r.stderr, "clone of its warm snapshot") {
			t.Fatalf("run %s: %+v", n, r)
		}
		t.Logf("MEASURE spare clone run -d → SSH ready: %s", time.Since(t0))
		ids[n] = cloneIdentity(t, n, snap.InstanceID, "spare", "thaw,rename,adopt,first-ssh")
		if err := dialWithHostKey(t, n, snap.HostKeyPublic); !errors.Is(err, sshx.ErrHostKeyMismatch) {
			t.Errorf("%s with the template's host key pinned: %v, want a mismatch", n, err)
		}
		// Plain OpenSSH under the VM's name: its known_hosts line names it.
		if out := mustFVM(t, "ssh", n, "--", "hostname"); strings.TrimSpace(out) != n {
			t.Errorf("fvm ssh %s: %q", n, out)
		}
		if left := spareDirs(); i == 0 && len(left) > 0 {
			t.Errorf("after the handover: %v", left) // the next spare comes 20 s later
		}
		if i == 0 {
			t.Run("host-kill-readopt", func(t *testing.T) { spareReadopt(t, n, warmArgs) })
		}
	}
	for _, k := range []string{"hostname", "machine-id", "hostkey", "vmgenid", "instance-id"} {
		if ids["spare1"][k] == ids["spare2"][k] || ids["spare1"][k] == "" {
			t.Errorf("the two VMs share their %s (%q)", k, ids["spare1"][k])
		}
	}

	t.Run("snapshot-suspend-resume", func(t *testing.T) {
		// Its QEMU was adopted where it moved and opens its files again by
		// the paths it was given (a link there): a live snapshot moves its
		// disk's top, a suspend saves its memory, as any VM's.
		mustFVM(t, "snapshot", "create", "spare2", "s1")
		mustFVM(t, "suspend", "spare2")
		mustFVM(t, "start", "spare2")
		if out := strings.Fields(mustFVM(t, "exec", "spare2", "--", "hostname; cat /etc/machine-id")); len(out) != 2 || out[0] != "spare2" || out[1] != ids["spare2"]["machine-id"] {
			t.Errorf("after suspend and resume: %q", out)
		}
	})

	t.Run("reboot-keeps-identity", func(t *testing.T) {
		fullOnly(t, "a cold reboot of a VM handed a spare, about 50 s")
		// Its seed was written again under its name, with the spare's instance id.
		mustFVM(t, "restart", "spare1")
		mustFVM(t, "wait", "--for", "ssh", "spare1")
		if out := strings.Fields(mustFVM(t, "exec", "spare1", "--", "hostname; cat /etc/machine-id; cat /var/lib/fvm/instance-id")); len(out) != 3 || out[0] != "spare1" || out[1] != ids["spare1"]["machine-id"] || out[2] != ids["spare1"]["instance-id"] {
			t.Errorf("after a cold reboot: %q, want spare1 %s %s", out, ids["spare1"]["machine-id"], ids["spare1"]["instance-id"])
		}
	})

	t.Run("not-for-other-specs", func(t *testing.T) {
		// A VM with its own forwards is cloned as usual; the spare waits on.
		ensureSpare(t, warmArgs)
		r := fvm(t, append([]string{"run", "-d", "debian-local", "spare3", "-p", fmt.Sprintf("%d:8080", freePort(t))}, shape...)...)
		if r.code != 0 {
			t.Fatalf("run spare3: %+v", r)
		}
		clonePhases(t, "spare3", "agent", agentPhases)
		if out := fvm(t, warmArgs...); !strings.Contains(out.stderr, spareReady) {
			t.Errorf("the spare went to a VM it cannot become: %+v", out)
		}
	})

	t.Run("host-killed-mid-handover", func(t *testing.T) {
		fullOnly(t, "eight host kills during spare handovers, about 3 minutes")
		spareKills(t, warmArgs, shape, 8)
	})

	t.Run("off", func(t *testing.T) {
		mustFVM(t, append(warmArgs, "--spare=false")...)
		if left := spareDirs(); len(left) > 0 {
			t.Errorf("a spare stayed: %v", left)
		}
		if r := fvm(t, warmArgs...); strings.Contains(r.stderr, spareReady) {
			t.Errorf("a spare is ready after --spare=false: %+v", r)
		}
		if left, _ := filepath.Glob(filepath.Join(layout.DataDir, "spares", "*")); len(left) > 0 {
			t.Errorf("the wish stayed: %v", left)
		}
	})
}

// spareReadopt: a VM handed a spare runs on when the host is killed, and the
// next host adopts it where it was moved (its QEMU launched under the spare's
// directory); the ready spare the killed host left is ended, and made again.
func spareReadopt(t *testing.T, name string, warmArgs []string) {
	ensureSpare(t, warmArgs)
	pid, qemuPID := hostPID(), readPID(t, name)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if out := mustFVM(t, "ps"); !strings.Contains(out, name) || !strings.Contains(out, "running") {
		t.Fatalf("after the host's kill: %s", out)
	}
	if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "hostname")); got != name || readPID(t, name) != qemuPID {
		t.Fatalf("re-adopted: hostname %q, qemu %d (was %d)", got, readPID(t, name), qemuPID)
	}
	qemus := spareQEMUs(t)
	if left := spareDirs(); len(left) > 0 || len(qemus) > 0 {
		t.Errorf("the killed host's spare stayed: %v, qemu %v", left, qemus)
	}
}

// spareKills kills the host at random moments of `fvm run -d` handed a
// spare: afterwards the VM is whole (running as itself, or stopped and
// startable as itself, or never made) and no spare's QEMU is left behind
// but the one spare a host keeps.
func spareKills(t *testing.T, warmArgs, shape []string, rounds int) {
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < rounds; i++ {
		ensureSpare(t, warmArgs)
		name := fmt.Sprintf("spkill%d", i)
		cmd := exec.Command(fvmBin, append([]string{"run", "-d", "debian-local", name}, shape...)...)
		cmd.Start()
		delay := time.Duration(rng.Intn(900)) * time.Millisecond
		time.Sleep(delay)
		if pid := hostPID(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			<-done
		}
		var vms []api.VM
		json.Unmarshal([]byte(mustFVM(t, "ls", "--format", "json")), &vms)
		state := "absent"
		for _, v := range vms {
			if v.Spec.Name == name {
				state = string(v.State)
			}
		}
		switch state {
		case "absent":
		case "running":
			mustFVM(t, "wait", "--for", "ssh", name)
		default:
			mustFVM(t, "start", name)
		}
		if state != "absent" {
			if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "hostname")); got != name {
				t.Errorf("round %d (kill after %s): %s is %s, its hostname %q", i, delay, name, state, got)
			}
		}
		t.Logf("round %d: host killed %s into run -d: the VM was %s", i, delay, state)
		if state != "absent" {
			mustFVM(t, "rm", "-f", name)
		}
		if q := spareQEMUs(t); len(q) > 1 {
			t.Errorf("round %d: %d spare QEMUs: %v", i, len(q), q)
		}
	}
}

// spareQEMUs lists the QEMU processes launched in a spare's directory that
// still hold it (a spare handed over runs on under its VM's name).
func spareQEMUs(t *testing.T) []string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-af", "qemu-system").Output()
	dirs := spareDirs()
	var spares []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.Contains(l, ".creating-"+"spare-") {
			continue
		}
		f := strings.Fields(l)
		for j := 0; j+1 < len(f); j++ {
			if f[j] == "-pidfile" && slices.Contains(dirs, filepath.Dir(f[j+1])) {
				spares = append(spares, f[j+1])
			}
		}
	}
	return spares
}

// ensureSpare has the host make the spare now (the host makes it by itself
// 20 s after a handover or its start), or waits for the one it is making.
func ensureSpare(t *testing.T, warmArgs []string) {
	t.Helper()
	if r := fvm(t, append(warmArgs, "--spare")...); !strings.Contains(r.stderr, spareReady) {
		waitSpare(t, warmArgs)
	}
}

// spareDirs are the directories of spares and creates in progress; not the
// links a handed-over spare leaves at its old path (its VM runs on there).
func spareDirs() []string {
	all, _ := filepath.Glob(filepath.Join(layout.VMsDir(), ".creating-*"))
	var dirs []string
	for _, p := range all {
		if st, err := os.Lstat(p); err == nil && st.IsDir() {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

// waitSpare waits until the snapshot of warmArgs has its spare again.
func waitSpare(t *testing.T, warmArgs []string) {
	t.Helper()
	for end := time.Now().Add(3 * time.Minute); ; time.Sleep(2 * time.Second) {
		r := fvm(t, warmArgs...)
		if strings.Contains(r.stderr, spareReady) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("no spare after 3 minutes: %+v", r)
		}
	}
}
