//go:build stress

package stress

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/store"
)

// snapshotKills kills the host (kill -9) at random moments of snapshots and
// clones of a running VM (its guest never boots: QEMU runs the firmware,
// which is all a snapshot needs), then checks that nothing is unusable: the
// VM runs (not left paused by a migration), every disk chain resolves (the
// VM's, each snapshot's, each clone's), every snapshot listed has its disk,
// no half-made snapshot or clone stays, and no layer stays that nothing
// reads. Finally the VM boots again from its chain and removing everything
// frees every layer.
func snapshotKills(t *testing.T, e *env, tl *tally, n int) {
	e.startHost()
	defer e.killHost()
	const src = "snapvm"
	if _, se, code := e.fvm("create", "base0", src, "--memory", "256M", "--cold"); code != 0 {
		t.Fatalf("create: %s", se)
	}
	defer e.fvm("rm", "-f", src)
	if _, se, code := e.fvm("start", "--no-wait", src); code != 0 { // no OS: nothing to wait for
		t.Fatalf("start: %s", se)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	kills, ops := 0, 0
	var pauses []string
	for i := 0; i < n; i++ {
		var args []string
		if i%2 == 0 {
			args = []string{"snapshot", "create", src, fmt.Sprintf("t%d", i)}
		} else {
			args = []string{"clone", src, fmt.Sprintf("k%d", i)}
		}
		ops++
		cmd := exec.Command(fvmBin, args...)
		cmd.Env = append(os.Environ(), "FVM_HOME="+e.home)
		var out strings.Builder
		cmd.Stderr = &out
		cmd.Start()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err == nil && args[0] == "snapshot" {
				pauses = append(pauses, strings.TrimSpace(out.String()))
			}
		case <-time.After(time.Duration(rng.Intn(1500)) * time.Millisecond):
			e.killHost()
			kills++
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				// The CLI started a host of its own on demand after the kill
				// (before killHost looked for one) and goes on with it: a clone
				// of this OS-less VM would wait minutes for an SSH that never
				// answers. The command and that host go too.
				cmd.Process.Kill()
				<-exited
				e.killHost()
			}
		}
		e.killHost()
		e.startHost()
		snapshotInvariants(t, e, src)
		// Clones are removed each round (each is a QEMU of its own), snapshots now and then.
		for _, c := range vmsBut(t, e, src) {
			if _, se, code := e.fvm("rm", "-f", c); code != 0 {
				t.Fatalf("clone %s not removable after a kill: %s", c, se)
			}
		}
		if i%5 == 4 {
			so, _, _ := e.fvm("snapshot", "ls", src, "--format", "json")
			var snaps []api.Snapshot
			json.Unmarshal([]byte(so), &snaps)
			for _, s := range snaps {
				if _, se, code := e.fvm("snapshot", "rm", src, s.Tag); code != 0 {
					t.Fatalf("snapshot %s not removable: %s", s.Tag, se)
				}
			}
		}
	}
	t.Logf("STRESS kill -9 of the host during snapshot create and clone: %d kills over %d operations, every state usable", kills, ops)
	tl.cases, tl.kills = tl.cases+ops, tl.kills+kills
	if len(pauses) > 0 {
		t.Logf("a completed snapshot said: %s", pauses[len(pauses)-1])
	}
	// The VM boots again from its chain (cold: a fresh QEMU reads every header).
	if _, se, code := e.fvm("stop", "-f", src); code != 0 {
		t.Fatalf("stop: %s", se)
	}
	if _, se, code := e.fvm("start", "--no-wait", src); code != 0 {
		t.Fatalf("start after the kills: %s", se)
	}
	e.fvm("rm", "-f", src)
	if left, _ := filepath.Glob(filepath.Join(e.l.LayersDir(), "*")); len(left) != 0 {
		t.Errorf("layers left once every VM is gone: %v", left)
	}
}

// snapshotInvariants is the check after each kill.
func snapshotInvariants(t *testing.T, e *env, src string) {
	t.Helper()
	so, se, code := e.fvm("ls", "--format", "json")
	if code != 0 {
		t.Fatalf("ls after a kill: %s", se)
	}
	var vms []api.VM
	json.Unmarshal([]byte(so), &vms)
	for _, v := range vms {
		dir := e.l.InstanceDir(v.Spec.Name)
		if v.Broken != "" {
			t.Fatalf("vm %s broken after a kill: %s", v.Spec.Name, v.Broken)
		}
		if v.Spec.Name == src {
			if v.State != "running" {
				t.Fatalf("the snapshotted VM is %s after a kill (%s)", v.State, v.Error)
			}
			if st := qmpStatus(t, dir); st != "running" {
				t.Fatalf("the snapshotted VM's QEMU is %q after a kill: left paused", st)
			}
		}
		if ents, _ := filepath.Glob(filepath.Join(dir, store.SnapshotsDir, ".tmp-*")); len(ents) != 0 {
			t.Errorf("half-made snapshots of %s stayed: %v", v.Spec.Name, ents)
		}
		if strays, _ := filepath.Glob(filepath.Join(dir, "disk*.qcow2*")); len(strays) != 1 {
			t.Errorf("vm %s has %d tops, want 1: %v", v.Spec.Name, len(strays), strays)
		}
		if v.Spec.Warm != "" && strings.HasPrefix(v.Spec.Warm, dir) {
			if _, err := os.Stat(filepath.Join(v.Spec.Warm, qemu.DiskFile)); err != nil {
				t.Errorf("clone %s: its origin's disk: %v", v.Spec.Name, err)
			}
		}
	}
	// A running VM's disk flattened in QEMU's background (more than
	// qemu.DefaultMaxLayers layers) leaves layers that nothing reads once
	// the stream ends, whether or not a host ran meanwhile: the host that
	// watches it prunes them then, so they go within moments, not at the
	// next rm.
	unread := unreadLayers(t, e, vms)
	for end := time.Now().Add(5 * time.Second); len(unread) > 0 && time.Now().Before(end); unread = unreadLayers(t, e, vms) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, l := range unread {
		t.Errorf("layer %s stayed though nothing reads it", l)
	}
	if len(unread) > 0 {
		t.Logf("the host's log, last lines:\n%s", hostLogTail(e, 40))
	}
	if ents, _ := filepath.Glob(filepath.Join(e.l.VMsDir(), ".creating-*")); len(ents) != 0 {
		t.Errorf("half-made clones stayed: %v", ents)
		for _, d := range ents {
			var files []string
			filepath.WalkDir(d, func(p string, _ os.DirEntry, _ error) error { files = append(files, p); return nil })
			t.Logf("%s holds %q", d, files)
		}
		t.Logf("the host's log, last lines:\n%s", hostLogTail(e, 60))
		if b, err := store.ReadTail(e.l.DaemonLog(), 8<<10); err == nil {
			t.Logf("the log of hosts the CLI started, last 8 KiB:\n%s", b)
		}
	}
}

// unreadLayers are the frozen layers no disk chain reads: of the VMs (their
// tops and clones' origins) and of their snapshots.
func unreadLayers(t *testing.T, e *env, vms []api.VM) []string {
	t.Helper()
	used := map[string]bool{}
	for _, v := range vms {
		for _, f := range chainOK(t, topOf(t, e.l.InstanceDir(v.Spec.Name))) {
			used[f] = true
		}
		// A clone's origin (its snapshot) keeps its disk, though the clone's
		// own chain may no longer read it (flattened).
		if v.Spec.Warm != "" && strings.HasPrefix(v.Spec.Warm, e.l.InstanceDir(v.Spec.Name)) {
			if origin := filepath.Join(v.Spec.Warm, qemu.DiskFile); isFileOrLink(origin) {
				for _, f := range chainOK(t, origin) {
					used[f] = true
				}
			}
		}
		so, se, code := e.fvm("snapshot", "ls", v.Spec.Name, "--format", "json")
		if code != 0 {
			t.Fatalf("snapshot ls %s: %s", v.Spec.Name, se)
		}
		var snaps []api.Snapshot
		json.Unmarshal([]byte(so), &snaps)
		for _, s := range snaps {
			for _, f := range chainOK(t, filepath.Join(s.Dir, qemu.DiskFile)) {
				used[f] = true
			}
		}
	}
	var out []string
	layers, _ := filepath.Glob(filepath.Join(e.l.LayersDir(), "*"))
	for _, l := range layers {
		if !used[l] {
			out = append(out, l)
		}
	}
	return out
}

func vmsBut(t *testing.T, e *env, keep string) []string {
	so, _, _ := e.fvm("ls", "--format", "json")
	var vms []api.VM
	json.Unmarshal([]byte(so), &vms)
	var out []string
	for _, v := range vms {
		if v.Spec.Name != keep {
			out = append(out, v.Spec.Name)
		}
	}
	return out
}

// topOf is the disk a VM writes (the qemu driver's facts).
func topOf(t *testing.T, dir string) string {
	var f struct{ Top string }
	store.ReadJSON(filepath.Join(dir, qemu.FactsFile), &f)
	if f.Top == "" {
		f.Top = qemu.DiskFile
	}
	return filepath.Join(dir, f.Top)
}

// chainOK checks with qemu-img that a disk's whole backing chain opens, and
// returns the files in it.
func chainOK(t *testing.T, disk string) []string {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "-U", "--backing-chain", "--output=json", disk).CombinedOutput()
	if err != nil {
		t.Fatalf("the chain of %s does not resolve: %v: %s", disk, err, out)
	}
	var infos []struct {
		Filename string `json:"filename"`
	}
	json.Unmarshal(out, &infos)
	var files []string
	for _, i := range infos {
		if real, err := filepath.EvalSymlinks(i.Filename); err == nil {
			files = append(files, real)
		}
	}
	return files
}

// qmpStatus asks the VM's QEMU its run state.
func qmpStatus(t *testing.T, dir string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q, err := qemu.DialQMP(ctx, filepath.Join(dir, qemu.QMPSocket))
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer q.Close()
	st, err := q.QueryStatus(ctx)
	if err != nil {
		return "error: " + err.Error()
	}
	return st
}

// hostLogTail is the last n lines the stress hosts logged.
func hostLogTail(e *env, n int) string {
	b, _ := os.ReadFile(filepath.Join(e.home, "stress-host.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func isFileOrLink(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
