//go:build stress

package stress

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"testing"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
)

// tally is what `make stress` reports in its closing note.
type tally struct {
	cases, kills, states, lost, exposed int
}

// fvmIn runs fvm with a deadline: hung says it had to be killed (a command
// that waits forever on a FIFO, a host that never answers).
func (e *env) fvmIn(d time.Duration, args ...string) (so, se string, code int, hung bool) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, fvmBin, args...)
	cmd.Env = append(append(os.Environ(), "FVM_HOME="+e.home), e.vars...)
	var o, x bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &x
	err := cmd.Run()
	if ctx.Err() != nil {
		return o.String(), x.String(), -1, true
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("fvm %v: %v", args, err)
	}
	return o.String(), x.String(), code, false
}

// splitError reports whether the CLI's final error (its last "fvm: " line,
// after any progress lines) spans more than one line.
func splitError(stderr string) bool {
	i := strings.LastIndex(stderr, "fvm: ")
	return i >= 0 && strings.Contains(strings.TrimSpace(stderr[i:]), "\n")
}

// stopHost ends the host with SIGTERM and says how long it took to exit;
// a host still there after limit is killed and the stop reported as failed.
func (e *env) stopHost(limit time.Duration) (time.Duration, bool) {
	if e.host == nil {
		return 0, true
	}
	t0 := time.Now()
	e.host.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() { e.host.Wait(); close(exited) }()
	defer func() { e.host = nil }()
	select {
	case <-exited:
		return time.Since(t0), true
	case <-time.After(limit):
		e.host.Process.Kill()
		<-exited
		return time.Since(t0), false
	}
}

// plant is one way a file fvm reads can be what fvm never wrote.
type plant struct {
	name string
	make func(p string) error
}

var plants = []plant{
	{"fifo", func(p string) error { os.RemoveAll(p); return syscall.Mkfifo(p, 0o600) }},
	{"oversized", func(p string) error {
		os.RemoveAll(p)
		return os.WriteFile(p, append([]byte(`{"name":"`), bytes.Repeat([]byte("x"), store.MaxStateFile+1)...), 0o600)
	}},
	{"symlink", func(p string) error { os.RemoveAll(p); return os.Symlink("/etc/hostname", p) }},
	{"directory", func(p string) error { os.RemoveAll(p); return os.Mkdir(p, 0o700) }},
}

// hostileState plants FIFOs, oversized files, symlinks and directories in
// place of every kind of file fvm reads back from a VM's directory, of image
// entries, of warm snapshot metadata and of fvm's key, and a VM directory
// whose spec names another VM. After each: ls, inspect, logs, images and
// prune answer (none hangs), the host restarts (re-adoption reads every spec)
// and stops on SIGTERM, and rm removes what is broken.
func hostileState(t *testing.T, e *env, n *tally) {
	e.startHost()
	defer func() {
		if e.host != nil {
			e.killHost()
		}
	}()
	const limit = 30 * time.Second
	answers := func(what string, args ...string) (string, int) {
		t.Helper()
		so, se, code, hung := e.fvmIn(limit, args...)
		if hung {
			t.Errorf("%s: `fvm %s` hung", what, strings.Join(args, " "))
		}
		if code != 0 && splitError(se) {
			t.Errorf("%s: `fvm %s`: the error is more than one line: %q", what, strings.Join(args, " "), se)
		}
		return so, code
	}
	restart := func(what string) {
		t.Helper()
		took, ok := e.stopHost(15 * time.Second)
		n.kills++
		if !ok {
			t.Errorf("%s: the host did not stop within 15s of SIGTERM", what)
		}
		t0 := time.Now()
		e.startHost() // fails the test unless the restarted host serves (Adopt read every spec)
		t.Logf("%s: SIGTERM stopped the host in %s, the next served in %s", what, took.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	listed := func(what, name string) api.VM {
		t.Helper()
		so, code := answers(what, "ls", "--format", "json")
		var vms []api.VM
		json.Unmarshal([]byte(so), &vms)
		n.states += len(vms)
		var found api.VM
		count := 0
		for _, v := range vms {
			if v.Spec.Name == name {
				found, count = v, count+1
			}
		}
		if code != 0 || count != 1 {
			t.Errorf("%s: ls (exit %d) lists %s %d times", what, code, name, count)
		}
		return found
	}

	vmFiles := []string{store.SpecFile, store.RuntimeFile, "qemu.json", "qemu.pid", store.HostKeyPubFile, store.InstanceIDFile,
		store.KnownHostsFile, store.SerialLog, "state.json", "disk.qcow2"}
	i := 0
	for _, f := range vmFiles {
		for _, pl := range plants {
			if f == "disk.qcow2" && pl.name == "oversized" {
				continue // a disk has no size limit; its FIFO is what could block prune
			}
			i++
			n.cases++
			name := fmt.Sprintf("h%d", i)
			what := f + " as " + pl.name
			if _, se, code := e.fvm("create", "base0", name); code != 0 {
				t.Fatalf("create: %s", se)
			}
			dir := e.l.InstanceDir(name)
			if f == "state.json" {
				os.WriteFile(filepath.Join(dir, "state.qemu"), []byte("state"), 0o600) // the meta counts only with a state
			}
			if err := pl.make(filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
			v := listed(what, name)
			if f == store.SpecFile && v.Broken == "" {
				t.Errorf("%s: %s is not broken: %+v", what, name, v)
			}
			answers(what, "inspect", name)
			answers(what, "logs", name)
			answers(what, "images")
			answers(what, "image", "prune")
			restart(what)
			listed(what+", after a restart", name)
			if _, code := answers(what, "rm", "-f", name); code != 0 {
				t.Errorf("%s: rm -f %s failed", what, name)
			}
			if _, err := os.Lstat(dir); err == nil {
				t.Errorf("%s: rm left %s", what, dir)
			}
		}
	}

	// A VM directory copied under another name: broken under its own name,
	// removable, and the original untouched.
	n.cases++
	if _, se, code := e.fvm("create", "base0", "orig"); code != 0 {
		t.Fatalf("create: %s", se)
	}
	if out, err := exec.Command("cp", "-a", e.l.InstanceDir("orig"), e.l.InstanceDir("copy")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if v := listed("a copied VM directory", "copy"); v.Broken == "" || !strings.Contains(v.Broken, `names vm "orig"`) {
		t.Errorf("a copied VM directory is listed as %+v, want broken, naming orig", v)
	}
	if v := listed("a copied VM directory", "orig"); v.Broken != "" {
		t.Errorf("the original of a copy is broken: %s", v.Broken)
	}
	restart("a copied VM directory")
	if _, code := answers("a copied VM directory", "rm", "-f", "copy"); code != 0 {
		t.Error("rm of the copy failed")
	}
	if _, code := answers("a copied VM directory", "inspect", "orig"); code != 0 {
		t.Error("removing the copy broke the original")
	}
	e.fvm("rm", "-f", "orig")
	// A symlink in place of a VM directory.
	n.cases++
	e.fvm("create", "base0", "target")
	os.Symlink(e.l.InstanceDir("target"), e.l.InstanceDir("alias"))
	if v := listed("a symlinked VM directory", "alias"); v.Broken == "" {
		t.Errorf("a symlink in place of a VM directory is listed as %+v, want broken", v)
	}
	answers("a symlinked VM directory", "rm", "-f", "alias")
	if _, err := os.Stat(e.l.InstanceDir("target")); err != nil {
		t.Error("removing the symlink removed its target")
	}
	e.fvm("rm", "-f", "target")

	// Image entries and warm snapshot metadata.
	for _, pl := range plants {
		n.cases++
		what := "an image entry as " + pl.name
		if err := pl.make(filepath.Join(e.l.ImagesDir(), "bad.json")); err != nil {
			t.Fatal(err)
		}
		so, code := answers(what, "images", "--format", "json")
		if pl.name != "directory" && (code != 0 || !strings.Contains(so, `"bad"`) || !strings.Contains(so, `"broken"`)) {
			t.Errorf("%s: images (exit %d) does not list bad as broken: %s", what, code, so)
		}
		restart(what)
		if pl.name != "directory" {
			if _, code := answers(what, "image", "rm", "bad"); code != 0 {
				t.Errorf("%s: image rm failed", what)
			}
		}
		os.RemoveAll(filepath.Join(e.l.ImagesDir(), "bad.json"))
		n.cases++
		what = "a warm snapshot's snapshot.json as " + pl.name
		snap := filepath.Join(e.l.WarmDir(), "abc-0123456789abcdef")
		os.MkdirAll(snap, 0o700)
		if err := pl.make(filepath.Join(snap, "snapshot.json")); err != nil {
			t.Fatal(err)
		}
		answers(what, "images", "--format", "json")
		answers(what, "image", "prune")
		restart(what)
		os.RemoveAll(snap)
	}
	// An image entry that names another image.
	n.cases++
	os.WriteFile(filepath.Join(e.l.ImagesDir(), "alias.json"), mustRead(t, filepath.Join(e.l.ImagesDir(), "base0.json")), 0o600)
	so, _ := answers("an image entry naming another", "images", "--format", "json")
	if !strings.Contains(so, `"alias"`) || strings.Count(so, `"name": "base0"`)+strings.Count(so, `"name":"base0"`) > 1 {
		t.Errorf("an image entry naming another: %s", so)
	}
	if _, code := answers("an image entry naming another", "create", "alias", "viaalias"); code == 0 {
		t.Error("a VM was created from an image entry that names another image")
	}
	answers("an image entry naming another", "image", "rm", "alias")
	// fvm's own SSH key as a FIFO: listing and restarts go on.
	n.cases++
	key := e.l.UserKey()
	saved, _ := os.ReadFile(key)
	os.Remove(key)
	syscall.Mkfifo(key, 0o600)
	answers("fvm's key as a FIFO", "ls")
	restart("fvm's key as a FIFO")
	os.Remove(key)
	if saved != nil {
		os.WriteFile(key, saved, 0o600)
	}
	t.Logf("STRESS hostile state: %d cases (every file fvm reads back, as FIFO, oversized, symlink, directory; copied and symlinked VM dirs; image entries; snapshot metadata), nothing hung", n.cases)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
