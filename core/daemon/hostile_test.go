package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// hostileDirs plants what a broken disk or another local user could leave in
// vms/: a FIFO spec (reading it would block forever), an oversized spec, a
// copy of good's directory (its spec names good) and a symlink to good's
// directory; and a FIFO runtime.json and host key inside good itself.
func hostileDirs(t *testing.T, l store.Layout) map[string]string {
	t.Helper()
	good := l.InstanceDir("good")
	fifo := l.InstanceDir("fifo")
	os.Mkdir(fifo, 0o700)
	if err := syscall.Mkfifo(filepath.Join(fifo, store.SpecFile), 0o600); err != nil {
		t.Fatal(err)
	}
	big := l.InstanceDir("big")
	os.Mkdir(big, 0o700)
	os.WriteFile(filepath.Join(big, store.SpecFile), append([]byte(`{"name":"big","image":"`), bytes.Repeat([]byte("x"), store.MaxStateFile)...), 0o600)
	cp := l.InstanceDir("copy")
	os.Mkdir(cp, 0o700)
	spec, _ := os.ReadFile(filepath.Join(good, store.SpecFile))
	os.WriteFile(filepath.Join(cp, store.SpecFile), spec, 0o600)
	os.Symlink(good, l.InstanceDir("link"))
	syscall.Mkfifo(filepath.Join(good, store.RuntimeFile), 0o600)
	os.Remove(filepath.Join(good, store.HostKeyPubFile))
	syscall.Mkfifo(filepath.Join(good, store.HostKeyPubFile), 0o600)
	return map[string]string{
		"fifo": "is a FIFO", "big": "bytes", "copy": `names vm "good" instead`, "link": "is a symlink, not a directory",
	}
}

// TestHostileStateNeverBlocksTheHost: with FIFOs, an oversized file, a copied
// directory and a symlink among the VMs, ls answers (each broken VM under its
// directory's name, with why), a restarted host adopts and serves, inspect and
// ssh info of the good VM answer, and rm removes each broken VM and nothing of
// the good one.
func TestHostileStateNeverBlocksTheHost(t *testing.T) {
	drv := &fakeDriver{running: map[string]*fakeMachine{}}
	h := startHost(t, drv)
	h.addImage(t)
	ctx := context.Background()
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("good"), Start: true}); err != nil {
		t.Fatal(err)
	}
	broken := hostileDirs(t, h.layout)

	check := func(when string) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		list, err := h.c.List(cctx)
		if err != nil {
			t.Fatalf("%s: ls: %v", when, err)
		}
		seen := map[string]int{}
		for _, v := range list {
			seen[v.Spec.Name]++
			want, isBroken := broken[v.Spec.Name]
			switch {
			case v.Spec.Name == "good":
				if v.Broken != "" || v.State != vm.Running {
					t.Errorf("%s: good is %s %q", when, v.State, v.Broken)
				}
			case !isBroken:
				t.Errorf("%s: ls lists %q, which has no directory of that name", when, v.Spec.Name)
			case v.State != vm.Broken || !strings.Contains(v.Broken, want) || strings.Contains(v.Broken, "\n") ||
				!strings.Contains(v.Broken, "fvm rm "+v.Spec.Name) || v.Dir != h.layout.InstanceDir(v.Spec.Name):
				t.Errorf("%s: %s: %+v, want broken saying %q", when, v.Spec.Name, v, want)
			}
		}
		if seen["good"] != 1 || len(seen) != len(broken)+1 {
			t.Errorf("%s: ls lists %v: want good once and every broken directory", when, seen)
		}
		if v, err := h.c.Get(cctx, "copy"); err != nil || v.State != vm.Broken {
			t.Errorf("%s: inspect copy: %+v %v", when, v, err)
		}
		if _, err := h.c.Get(cctx, "good"); err != nil {
			t.Errorf("%s: inspect good: %v", when, err)
		}
		if _, err := h.c.SSHInfo(cctx, "good"); err == nil || !strings.Contains(err.Error(), "FIFO") {
			t.Errorf("%s: ssh info with a FIFO host key: %v, want an error naming the FIFO", when, err)
		}
	}
	check("first host")

	// A restarted host adopts good (the "VM" kept running) past the FIFOs.
	h.stop()
	h2 := startHostIn(t, filepath.Dir(h.layout.DataDir), Options{Drivers: []driver.Driver{drv}}, drv)
	h = h2
	check("restarted host")

	for name := range broken {
		if err := h.c.Remove(ctx, name, true); err != nil {
			t.Fatalf("rm %s: %v", name, err)
		}
		if h.layoutHasVM(name) {
			t.Fatalf("rm %s left its directory", name)
		}
	}
	if _, err := os.Stat(filepath.Join(h.layout.InstanceDir("good"), fakeDisk)); err != nil {
		t.Fatalf("removing the broken VMs touched good: %v", err)
	}
	if got := drv.callsFor("good"); strings.Contains(strings.Join(got, ","), "delete") {
		t.Fatalf("the copy's removal deleted good: %v", got)
	}
}
