//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShares: host directories shared into a VM: a read-write one (virtiofs
// where virtiofsd runs, 9p otherwise) and a read-only one (9p, enforced by
// QEMU on the host side); files cross both ways and the shares come back after
// a stop and start. It boots its own VM (VMs with shares are not cloned), side
// by side with the other parallel tests.
func TestShares(t *testing.T) {
	t.Parallel()
	ensureImage(t)
	rw, ro := t.TempDir(), t.TempDir()
	os.Chmod(rw, 0o777) // the guest user writes here (9p passes its uid through)
	os.WriteFile(filepath.Join(rw, "from-host"), []byte("hello guest\n"), 0o644)
	os.WriteFile(filepath.Join(ro, "readme"), []byte("read only\n"), 0o644)
	const name = "shares1"
	t0 := time.Now()
	mustFVM(t, "run", "-d", "debian-local", name, "--memory", "1G", "-v", rw+":/mnt/rw", "-v", ro+":/mnt/ro:ro")
	t.Logf("MEASURE run -d with two shares → SSH ready: %s", time.Since(t0))
	defer fvm(t, "rm", "-f", name)
	mustFVM(t, "wait", name) // the mounts happen at boot, before cloud-init is done
	check := func(t *testing.T) {
		t.Helper()
		if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "cat /mnt/rw/from-host /mnt/ro/readme")); got != "hello guest\nread only" {
			t.Fatalf("host files in the guest: %q", got)
		}
		stamp := fmt.Sprint(time.Now().UnixNano())
		mustFVM(t, "exec", name, "--", "echo "+stamp+" > /mnt/rw/from-guest")
		if b, _ := os.ReadFile(filepath.Join(rw, "from-guest")); strings.TrimSpace(string(b)) != stamp {
			t.Fatalf("a guest write is not on the host: %q", b)
		}
		// Read-only holds even for root in the guest, and even remounted rw.
		r := fvm(t, "exec", name, "--", "sudo mount -o remount,rw /mnt/ro 2>/dev/null; sudo touch /mnt/ro/nope")
		if r.code == 0 {
			t.Fatal("a write into the :ro share succeeded")
		}
		if _, err := os.Stat(filepath.Join(ro, "nope")); err == nil {
			t.Fatal("a guest write reached the host through the :ro share")
		}
	}
	check(t)
	out := mustFVM(t, "exec", name, "--", "findmnt -no FSTYPE /mnt/rw; findmnt -no FSTYPE /mnt/ro")
	t.Logf("share file systems (rw, ro): %q", strings.Fields(out))
	if inspect := mustFVM(t, "inspect", name); !strings.Contains(inspect, `"guestPath": "/mnt/ro"`) || !strings.Contains(inspect, `"readOnly": true`) {
		t.Errorf("inspect does not show the mounts:\n%s", inspect)
	}
	t.Run("suspend", func(t *testing.T) {
		// QEMU 7.2 cannot save a VM while a virtiofs device is attached: the
		// refusal must be one clear line, and the VM must run on as before.
		r := fvm(t, "suspend", name)
		if r.code == 0 {
			mustFVM(t, "start", name)
			check(t)
			return
		}
		if msg := strings.TrimSpace(r.stderr); strings.Count(msg, "\n") > 0 || !strings.Contains(msg, "share") {
			t.Errorf("a refused suspend should say, in one line, that the shares are why: %q", msg)
		}
		check(t)
	})
	t.Run("snapshot-disk-only", func(t *testing.T) {
		// Running, but its memory cannot be saved: a disk-only snapshot, with why.
		r := fvm(t, "snapshot", "create", name, "s1")
		if r.code != 0 || !strings.Contains(r.stderr, "(disk,") || !strings.Contains(r.stderr, "disk only") || !strings.Contains(r.stderr, "shared folders") {
			t.Fatalf("snapshot of a VM with shares: %+v", r)
		}
		if ls := mustFVM(t, "snapshot", "ls", name); !strings.Contains(ls, "no (disk only)") {
			t.Errorf("snapshot ls:\n%s", ls)
		}
		check(t)
		if os.Getenv("FVM_E2E_FULL") == "" {
			return
		}
		// Its clone boots cold from that disk, with the shares, under its own name.
		defer fvm(t, "rm", "-f", "shares2")
		r = fvm(t, "clone", name+":s1", "shares2")
		if r.code != 0 || !strings.Contains(r.stderr, "boots cold") {
			t.Fatalf("clone of a VM with shares: %+v", r)
		}
		if got := strings.TrimSpace(mustFVM(t, "exec", "shares2", "--", "hostname; cat /mnt/ro/readme")); got != "shares2\nread only" {
			t.Fatalf("the clone: %q", got)
		}
	})
	t.Run("survive-stop-start", func(t *testing.T) {
		fullOnly(t, "a second cold boot with shares, about 2 minutes beside other tests")
		mustFVM(t, "stop", name)
		mustFVM(t, "start", name)
		check(t)
	})
	if os.Getenv("FVM_E2E_FULL") != "" {
		t.Run("speed", func(t *testing.T) { shareSpeed(t, name) })
	}
}

// shareSpeed measures a 1 GiB sequential write and read and an untar of many
// small files, through the read-write share and on the VM's own disk.
func shareSpeed(t *testing.T, name string) {
	script := `set -e
el() { awk "BEGIN{printf \"%.2f\", $2 - $1}"; }
for d in /mnt/rw $HOME; do
  mkdir -p $d/bench; cd $d/bench
  s=$(date +%s.%N); dd if=/dev/zero of=big bs=1M count=1024 conv=fsync status=none; e=$(date +%s.%N); echo "$d write-1GiB $(el $s $e)"
  sync; echo 3 | sudo tee /proc/sys/vm/drop_caches >/dev/null
  s=$(date +%s.%N); dd if=big of=/dev/null bs=1M status=none; e=$(date +%s.%N); echo "$d read-1GiB $(el $s $e)"
  rm -f big
  s=$(date +%s.%N); tar -xf /tmp/small.tar; sync; e=$(date +%s.%N); echo "$d untar-2000-files $(el $s $e)"
  cd /; rm -rf $d/bench
done`
	mustFVM(t, "exec", name, "--", "mkdir -p /tmp/small && cd /tmp/small && for i in $(seq 2000); do echo $i > f$i; done && tar -cf /tmp/small.tar -C /tmp small")
	out := mustFVM(t, "exec", name, "--", script)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		t.Logf("MEASURE share speed: %s s", l)
	}
}
