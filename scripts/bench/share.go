package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// shareScript times, inside the guest, a 1 GiB sequential write (fsync'd) and
// read (page cache dropped first) and an untar of 2000 small files, in the
// directory given as $1; one "what seconds" line each.
const shareScript = `set -e
el() { awk "BEGIN{printf \"%.3f\", $2 - $1}"; }
[ -f /tmp/small.tar ] || { mkdir -p /tmp/small && for i in $(seq 2000); do echo $i > /tmp/small/f$i; done && tar -cf /tmp/small.tar -C /tmp small; }
mkdir -p "$1/bench"; cd "$1/bench"
s=$(date +%s.%N); dd if=/dev/zero of=big bs=1M count=1024 conv=fsync status=none; e=$(date +%s.%N); echo "write $(el $s $e)"
sync; echo 3 | sudo tee /proc/sys/vm/drop_caches >/dev/null
s=$(date +%s.%N); dd if=big of=/dev/null bs=1M status=none; e=$(date +%s.%N); echo "read $(el $s $e)"
rm -f big
s=$(date +%s.%N); tar -xf /tmp/small.tar; sync; e=$(date +%s.%N); echo "untar $(el $s $e)"
cd /; rm -rf "$1/bench"`

// benchShare compares a read-write shared folder (-v: virtiofs where virtiofsd
// runs, else 9p) with the VM's own disk, in the same VM.
func benchShare(b *bench) error {
	const name = "bench-share"
	dir, err := os.MkdirTemp(b.home, "share-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o777) // the guest's user writes here (uids pass through: root owns a MkdirTemp)
	defer func() {
		b.run("rm", "-f", name) // before its shared folder goes
		os.RemoveAll(dir)
	}()
	if err := b.vm(name, "--memory", "1G", "--cold", "-v", dir+":/mnt/share"); err != nil {
		return err
	}
	if _, err := b.run("wait", name); err != nil {
		return err
	}
	share, err := b.shareTimes(name, "/mnt/share")
	if err != nil {
		return err
	}
	disk, err := b.shareTimes(name, "/var/tmp")
	if err != nil {
		return err
	}
	transport := "9p"
	if matches, _ := filepath.Glob(filepath.Join(b.home, "data", "vms", name, "virtiofs-*.sock")); len(matches) > 0 {
		transport = "virtiofs"
	}
	for _, op := range []struct{ key, name string }{
		{"write", "1 GiB sequential write (fsync)"},
		{"read", "1 GiB sequential read (cold cache)"},
		{"untar", "untar 2000 small files"},
	} {
		b.add(Row{Name: "shared folder: " + op.name, Value: share[op.key], Unit: "s",
			Versus: "the VM's own disk", Against: disk[op.key], Note: transport})
	}
	return nil
}

// shareTimes runs shareScript in dir inside the VM.
func (b *bench) shareTimes(name, dir string) (map[string]float64, error) {
	out, err := b.run("exec", name, "--", "bash", "-c", shareScript, "bench", dir)
	if err != nil {
		return nil, err
	}
	times := map[string]float64{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("share bench output %q: %w", l, err)
		}
		times[f[0]] = v
	}
	if len(times) != 3 {
		return nil, fmt.Errorf("share bench in %s printed %q", dir, out)
	}
	return times, nil
}
