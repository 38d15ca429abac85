package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// benchLibvirt measures the libvirt backend beside the qemu backend's rows of
// the same run: a first `run -d --backend libvirt` to SSH (the base uploaded
// to the pool, read back and checked), a second VM of the same image (the base
// there already), and exec over the libvirt channel. libvirt makes no warm
// clones: its "clone" row is that second VM's cold boot, said so. The daemon
// is the system one as root (scripts/libvirtd.sh starts it when none runs).
func benchLibvirt(b *bench) error {
	if _, err := exec.LookPath("libvirtd"); err != nil {
		return fmt.Errorf("no libvirtd: run scripts/setup.sh")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (the system daemon)")
	}
	state := "/tmp/fvm-bench-lvd"
	script, _ := filepath.Abs("scripts/libvirtd.sh")
	if out, err := exec.Command(script, "start", state).CombinedOutput(); err != nil {
		return fmt.Errorf("libvirtd.sh: %v: %s", err, out)
	}
	defer exec.Command(script, "stop", state).Run()
	coldQEMU := 0.0
	for _, r := range b.rows {
		if strings.HasPrefix(r.Name, "cold fvm run -d") {
			coldQEMU = r.Value
		}
	}
	const first, second = "bench-lv1", "bench-lv2"
	b.vms = append(b.vms, first, second)
	if coldQEMU == 0 { // run without the boot row: a cold boot of the qemu backend beside
		const q = "bench-lvq"
		b.vms = append(b.vms, q)
		t0 := time.Now()
		if _, err := b.run("run", "-d", "--cold", "debian-local", q, "--memory", "1G"); err != nil {
			return err
		}
		coldQEMU = secs(time.Since(t0))
		b.run("rm", "-f", q)
	}
	t0 := time.Now()
	if _, err := b.run("run", "-d", "--backend", "libvirt", "debian-local", first, "--memory", "1G"); err != nil {
		return err
	}
	firstTime := time.Since(t0)
	b.add(Row{Name: "libvirt run -d → SSH (base uploaded)", Value: secs(firstTime), Unit: "s", Versus: "qemu backend's cold run -d → SSH", Against: coldQEMU, Target: "≈ 1× + the upload"})
	var ds []time.Duration
	for i := 0; i < 5; i++ {
		d, err := b.timed("exec", first, "--", "true")
		if err != nil {
			return err
		}
		ds = append(ds, d)
	}
	b.add(Row{Name: "libvirt exec true (median of 5)", Value: float64(median(ds).Milliseconds()), Unit: "ms", Note: "a session on the held connection over the virtio-serial channel"})
	t0 = time.Now()
	if _, err := b.run("run", "-d", "--backend", "libvirt", "debian-local", second, "--memory", "1G"); err != nil {
		return err
	}
	b.add(Row{Name: "libvirt second run -d → SSH (clone → SSH: no warm clones, a cold boot)", Value: secs(time.Since(t0)), Unit: "s", Versus: "qemu backend's cold run -d → SSH", Against: coldQEMU, Target: "≈ 1×"})
	return nil
}
