//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/cloudinit"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// TestWarmClones: the second VM of an image and shape starts from its warm
// snapshot (made in the background after TestVMLifecycle's cold boot), and
// each clone is its own machine: host key, hostname, machine id, VM
// generation, all pinned and apart; the template's key is refused by both.
func TestWarmClones(t *testing.T) {
	ensureImage(t)
	t0 := time.Now()
	snapDir := strings.TrimSpace(mustFVM(t, "image", "warm", "debian-local", "--memory", "1G")) // waits for a build in progress
	t.Logf("MEASURE warm snapshot ready after %s (made in the background since TestVMLifecycle's boot, or now)", time.Since(t0))
	var snap struct {
		HostKeyPublic string `json:"hostKeyPublic"`
		InstanceID    string `json:"instanceID"`
		BuildSeconds  float64
	}
	if err := store.ReadJSON(filepath.Join(snapDir, "snapshot.json"), &snap); err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURE warm snapshot build took %.0f s", snap.BuildSeconds)
	var imgs []api.Image
	json.Unmarshal([]byte(mustFVM(t, "images", "--format", "json")), &imgs)
	if n := warmCount(imgs, "debian-local"); n < 1 {
		t.Fatalf("fvm images shows no warm snapshot for debian-local: %+v", imgs)
	}

	// Two clones at once.
	names := []string{"clone1", "clone2"}
	var wg sync.WaitGroup
	res := make([]result, len(names))
	took := make([]time.Duration, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			res[i] = fvm(t, "run", "-d", "debian-local", n, "--memory", "1G")
			took[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.code != 0 || !strings.Contains(r.stderr, "clone of its warm snapshot") || !strings.Contains(r.stderr, "Cloned "+names[i]) {
			t.Fatalf("run %s: %+v", names[i], r)
		}
		t.Logf("MEASURE warm clone run -d → SSH ready (two at once): %s", took[i])
	}
	t.Cleanup(func() { fvm(t, "rm", "-f", "clone1", "clone2") })

	ids := map[string]map[string]string{}
	for _, n := range names {
		ids[n] = cloneIdentity(t, n, snap.InstanceID, "agent", agentPhases)
	}
	// The template's cold boot tried SSH only once its agent answered, so its
	// guest served no attempt the host had given up on (its journal, under
	// the template's name, is on every clone's disk).
	if n := strings.TrimSpace(mustFVM(t, "exec", "clone1", "--", "sudo journalctl -D /var/log/journal -o cat _HOSTNAME="+cloudinit.TemplateHostname+" | grep -c preauth || true")); n != "0" {
		t.Errorf("the template's boot served %s abandoned SSH attempts (preauth lines in its journal)", n)
	}
	for _, k := range []string{"hostname", "machine-id", "hostkey", "vmgenid", "instance-id"} {
		if ids["clone1"][k] == ids["clone2"][k] || ids["clone1"][k] == "" {
			t.Errorf("the two clones share their %s (%q)", k, ids["clone1"][k])
		}
	}
	// Both map the template's memory copy-on-write (memfile.go): resident is
	// what each touched, not a copy of the whole guest (1.2 GiB before).
	for _, n := range names {
		pid := readPID(t, n)
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if err != nil || !strings.Contains(string(maps), filepath.Join(snapDir, qemu.MemoryFile)) {
			t.Errorf("%s's QEMU does not map the template's memory file (%v)", n, err)
		}
		rss := rssMiB(t, pid)
		t.Logf("MEASURE warm clone QEMU RSS (1 GiB guest): %d MiB", rss)
		if rss > 700 {
			t.Errorf("%s's QEMU is %d MiB resident: it holds a copy of its template's memory", n, rss)
		}
	}
	// The template's host key works for neither.
	for _, n := range names {
		if err := dialWithHostKey(t, n, snap.HostKeyPublic); !errors.Is(err, sshx.ErrHostKeyMismatch) {
			t.Errorf("%s with the template's host key pinned: %v, want a mismatch", n, err)
		}
	}

	t.Run("reboot-keeps-identity", func(t *testing.T) {
		fullOnly(t, "a cold reboot of a clone, about 50 s")
		t0 := time.Now()
		mustFVM(t, "restart", "clone1")
		mustFVM(t, "wait", "--for", "ssh", "clone1")
		t.Logf("MEASURE clone cold restart → SSH ready: %s", time.Since(t0))
		out := strings.Fields(mustFVM(t, "exec", "clone1", "--", "hostname; cat /etc/machine-id"))
		if len(out) != 2 || out[0] != "clone1" || out[1] != ids["clone1"]["machine-id"] {
			t.Fatalf("after reboot: %q, want clone1 %s", out, ids["clone1"]["machine-id"])
		}
		cloneJournal(t, "clone1") // journald set the template's files aside and writes its own
	})

	t.Run("mismatched-fingerprint-boots-cold", func(t *testing.T) {
		p := filepath.Join(snapDir, "snapshot.json")
		orig, _ := os.ReadFile(p)
		os.Chmod(p, 0o644)
		var m map[string]any
		json.Unmarshal(orig, &m)
		m["fingerprint"] = "0000000000000000000000000000000000000000000000000000000000000000"
		b, _ := json.Marshal(m)
		os.WriteFile(p, b, 0o644)
		defer os.WriteFile(p, orig, 0o644)
		r := fvm(t, "create", "debian-local", "cold1", "--memory", "1G")
		defer fvm(t, "rm", "-f", "cold1")
		if r.code != 0 || !strings.Contains(r.stderr, "booting cold") || strings.Contains(r.stderr, "clone of its warm snapshot") {
			t.Fatalf("create with a snapshot that does not fit: %+v", r)
		}
	})

	t.Run("rm-leaves-nothing", func(t *testing.T) {
		mustFVM(t, "rm", "-f", "clone1", "clone2")
		for _, n := range names {
			if _, err := os.Stat(layout.InstanceDir(n)); !os.IsNotExist(err) {
				t.Errorf("%s: dir left: %v", n, err)
			}
		}
	})
}

// agentPhases are a warm clone's start phases, re-identified through its agent.
const agentPhases = "restore,agent-ready,re-identify,key-live,first-ssh"

// cloneIdentity checks that clone n is its own machine, as the guest says:
// hostname, instance id (not the template's), a bound vmgenid and a reseeded
// CRNG, its clock, its grown disk, its pinned host key, its start (via,
// phases), journal and timers; it returns what sets it apart.
func cloneIdentity(t *testing.T, n, templateInstanceID, via, phases string) map[string]string {
	t.Helper()
	before := float64(time.Now().UnixNano()) / 1e9
	out := mustFVM(t, "exec", n, "--", `hostname; cat /etc/machine-id; sudo cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2; ls /sys/bus/acpi/drivers/vmgenid/ /sys/bus/platform/drivers/vmgenid/ 2>/dev/null | grep -c : ; sudo dmesg | grep -c "crng reseeded due to virtual machine fork"; date +%s.%N; df -B1G --output=size / | tail -1; cat /var/lib/fvm/instance-id 2>/dev/null || cat /var/lib/cloud/data/instance-id`)
	f := strings.Fields(out)
	if len(f) != 8 {
		t.Fatalf("%s: %q", n, out)
	}
	id := map[string]string{"hostname": f[0], "machine-id": f[1], "hostkey": f[2], "vmgenid-bound": f[3], "reseeded": f[4], "instance-id": f[7]}
	if iid, _ := os.ReadFile(filepath.Join(layout.InstanceDir(n), store.InstanceIDFile)); strings.TrimSpace(string(iid)) != f[7] || f[7] == templateInstanceID {
		t.Errorf("%s: the guest's instance id (fvm-init's, else cloud-init's) %s, want its seed's %s (the template's was %s)", n, f[7], strings.TrimSpace(string(iid)), templateInstanceID)
	}
	clonePhases(t, n, via, phases)
	cloneJournal(t, n)
	cloneTimers(t, n)
	if f[0] != n {
		t.Errorf("%s: hostname %q", n, f[0])
	}
	if f[3] == "0" {
		t.Errorf("%s: the guest's vmgenid driver is not bound", n)
	}
	if f[4] == "0" {
		t.Errorf("%s: the kernel did not reseed its CRNG on the new VM generation ID", n)
	}
	if g, _ := strconv.ParseFloat(f[5], 64); g < before-2 {
		t.Errorf("%s: guest clock %s is %.1f s behind the host's", n, f[5], before-g)
	}
	if sz, _ := strconv.Atoi(f[6]); sz < 18 {
		t.Errorf("%s: root filesystem %s GiB, want it grown to ~20G", n, f[6])
	}
	var facts struct{ VMGenID string }
	store.ReadJSON(filepath.Join(layout.InstanceDir(n), qemu.FactsFile), &facts)
	id["vmgenid"] = facts.VMGenID
	pinned, _ := os.ReadFile(filepath.Join(layout.InstanceDir(n), store.HostKeyPubFile))
	if !strings.Contains(string(pinned), f[2]) {
		t.Errorf("%s: the guest's host key is not the one fvm pinned", n)
	}
	return id
}

// clonePhases checks that a clone was made its own via via (the guest
// agent, or a spare's handover), with its phases in `fvm inspect`, and that
// its consoles show the clone: the login prompts printed again under its own
// name.
func clonePhases(t *testing.T, name, via, phases string) {
	t.Helper()
	var v api.VM
	if err := json.Unmarshal([]byte(mustFVM(t, "inspect", name)), &v); err != nil {
		t.Fatal(err)
	}
	ls := v.LastStart
	if ls == nil || ls.Boot != "clone" || ls.Via != via {
		t.Fatalf("%s: last start %+v, want a clone made its own via %s", name, ls, via)
	}
	var names []string
	for _, p := range ls.Phases {
		names = append(names, p.Name)
		t.Logf("MEASURE %s start phase %s: %.3f s", name, p.Name, p.Seconds)
	}
	if got := strings.Join(names, ","); got != phases {
		t.Errorf("%s: phases %s", name, got)
	}
	// The screen (tty1's text, /dev/vcs1) and the serial console end with the
	// clone's prompt: the screen cleared and the gettys' prompts printed again
	// once re-identified.
	want := name + " login:"
	var screen, serial string
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		screen = mustFVM(t, "exec", name, "--", "sudo cat /dev/vcs1 | tr -s ' '")
		b, _ := os.ReadFile(filepath.Join(layout.InstanceDir(name), store.SerialLog))
		if serial = string(b); strings.Contains(screen, want) && strings.Contains(serial, want) {
			break
		}
	}
	if !strings.Contains(screen, want) || strings.Contains(screen, "fvm-warm login:") {
		t.Errorf("%s: the screen shows %q, want the clone's prompt", name, screen)
	}
	if i, j := strings.LastIndex(serial, want), strings.LastIndex(serial, "fvm-warm login:"); i < 0 || i < j {
		t.Errorf("%s: the serial console's last prompt is not the clone's: %q", name, tailFile(filepath.Join(layout.InstanceDir(name), store.SerialLog)))
	}
}

// cloneJournal: the clone's journal is this machine's (journalctl without
// --merge reads the directory named by the machine id) and takes the
// current boot's new entries.
func cloneJournal(t *testing.T, name string) {
	t.Helper()
	out := mustFVM(t, "exec", name, "--", `logger -t fvmcheck "hello from $(hostname)"; d=/var/log/journal/$(cat /etc/machine-id); sudo test -d "$d" -a ! -L "$d" && echo real-dir; for i in 1 2 3 4 5; do sudo journalctl -b -t fvmcheck -o cat | grep -q "hello from" && break; sleep 1; done; sudo journalctl -b -t fvmcheck -o cat`)
	if !strings.Contains(out, "real-dir") || !strings.Contains(out, "hello from "+name) {
		t.Errorf("%s: the journal under its machine id: %q", name, out)
	}
}

// cloneTimers: the calendar timers the template stopped before its save run
// again in the clone (scheduled from its clock: none overdue), and their
// list is emptied.
func cloneTimers(t *testing.T, name string) {
	t.Helper()
	out := mustFVM(t, "exec", name, "--", `systemctl is-active apt-daily.timer dpkg-db-backup.timer fstrim.timer; test -s /run/fvm-paused-timers && echo list-stayed; systemctl show -p ExecMainStartTimestampMonotonic --value dpkg-db-backup.service`)
	if f := strings.Fields(out); len(f) != 4 || f[0] != "active" || f[1] != "active" || f[2] != "active" || f[3] != "0" {
		t.Errorf("%s: its calendar timers (active, active, active, never run): %q", name, out)
	}
}

func warmCount(imgs []api.Image, name string) int {
	for _, im := range imgs {
		if im.Name == name {
			return len(im.Warm)
		}
	}
	return 0
}

// dialWithHostKey connects to a VM's SSH with hostKey pinned instead of its own.
func dialWithHostKey(t *testing.T, name, hostKey string) error {
	t.Helper()
	var v api.VM
	if err := json.Unmarshal([]byte(mustFVM(t, "inspect", name)), &v); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(layout.UserKey())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sshx.Dial(ctx, sshx.Target{Addr: "127.0.0.1:" + strconv.Itoa(v.SSHPort), User: v.Spec.User, Signer: signer, HostKey: hostKey})
	if err == nil {
		c.Close()
	}
	return err
}

// rssMiB is the resident memory of process pid.
func rssMiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb >> 10
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}
