package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// benchExec: `fvm exec NAME -- true` (a session on the connection the host
// holds) against a fresh OpenSSH connection to the same VM, 20 of each, medians.
func benchExec(b *bench) error {
	const name = "bench-exec"
	if err := b.vm(name, "--memory", "1G"); err != nil {
		return err
	}
	first, err := b.timed("exec", name, "--", "true") // right after run -d returned
	if err != nil {
		return err
	}
	if _, err := b.run("wait", name); err != nil { // cloud-init done: a quiet guest
		return err
	}
	cfgText, err := b.run("ssh-config", "--no-mux", name)
	if err != nil {
		return err
	}
	cfg := filepath.Join(b.home, "bench-ssh-config")
	if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
		return err
	}
	var viaHost, fresh []time.Duration
	for i := 0; i < 20; i++ {
		d, err := b.timed("exec", name, "--", "true")
		if err != nil {
			return err
		}
		viaHost = append(viaHost, d)
		t0 := time.Now()
		out, err := exec.Command("ssh", "-F", cfg, "-o", "ControlMaster=no", "-o", "BatchMode=yes", name+".fvm", "true").CombinedOutput()
		if err != nil {
			return fmt.Errorf("fresh ssh: %v: %s", err, out)
		}
		fresh = append(fresh, time.Since(t0))
	}
	b.add(Row{Name: "fvm exec NAME -- true (median of 20)", Value: secs(median(viaHost)), Unit: "s",
		Versus: "fresh OpenSSH connection", Against: secs(median(fresh)), Target: "≤ 0.3× and ≤ 0.2 s"})
	b.add(Row{Name: "first fvm exec right after run -d", Value: secs(first), Unit: "s",
		Versus: "median exec", Against: secs(median(viaHost)), Target: "≤ 2×", Note: "cloud-init's later stages may still run"})
	return nil
}
