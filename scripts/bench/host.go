package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

// benchCreate: `fvm create` (overlay, seed, keys) on a 2 GiB and a 20 GiB
// base, median of 5 each: the size of the base must not matter.
func benchCreate(b *bench) error {
	var med [2]time.Duration
	for i, gib := range []int64{2, 20} {
		name := fmt.Sprintf("bench-%dg", gib)
		f := filepath.Join(b.home, name+".raw")
		if err := sparseDisk(f, gib<<30); err != nil {
			return err
		}
		if _, err := b.run("image", "import", f, "--name", name); err != nil {
			return err
		}
		var ds []time.Duration
		for j := 0; j < 5; j++ {
			vmName := fmt.Sprintf("%s-%d", name, j)
			d, err := b.timed("create", name, vmName, "--disk", "40G")
			if err != nil {
				return err
			}
			ds = append(ds, d)
			b.run("rm", vmName)
		}
		med[i] = median(ds)
		b.run("image", "rm", name)
		os.Remove(f)
	}
	b.add(Row{Name: "fvm create on a 20 GiB base (median of 5)", Value: secs(med[1]) * 1000, Unit: "ms", Versus: "on a 2 GiB base", Against: secs(med[0]) * 1000, Target: "≈ 1×"})
	return nil
}

// sparseDisk makes a sparse raw disk with an MBR boot signature.
func sparseDisk(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0x55, 0xAA}, 510); err != nil {
		return err
	}
	return f.Truncate(size)
}

// benchPs: `fvm ps -a` at 1, 100 and 1000 VMs (stopped ones: listing reads
// each VM's directory), in a state directory of its own.
func benchPs(b *bench) error {
	home, err := os.MkdirTemp("", "fvm-bench-ps.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	env := append(os.Environ(), "FVM_HOME="+home)
	ps := func() (time.Duration, error) {
		cmd := exec.Command(b.fvm, "ps", "-a")
		cmd.Env = env
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("fvm ps: %v: %s", err, out)
		}
		return time.Since(t0), nil
	}
	defer stopHost(b.fvm, env)
	made := 0
	var at [3]time.Duration
	for i, n := range []int{1, 100, 1000} {
		for ; made < n; made++ {
			if err := writeVMDir(home, fmt.Sprintf("vm%04d", made)); err != nil {
				return err
			}
		}
		ps() // starts the host, warms caches
		var ds []time.Duration
		for j := 0; j < 5; j++ {
			d, err := ps()
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		at[i] = median(ds)
	}
	b.add(Row{Name: "fvm ps -a at 1000 VMs (median of 5)", Value: secs(at[2]) * 1000, Unit: "ms", Versus: "at 1 VM", Against: secs(at[0]) * 1000, Target: "≤ 100 ms",
		Note: fmt.Sprintf("at 100 VMs: %.1f ms", secs(at[1])*1000)})
	return nil
}

// writeVMDir writes a stopped VM's directory as fvm create leaves it (its spec;
// listing needs nothing else).
func writeVMDir(home, name string) error {
	dir := filepath.Join(home, "data", "vms", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s := vm.Spec{Name: name, Image: "debian-local", BaseImage: "/nonexistent/base.qcow2", Arch: vm.AMD64, CPUs: 2, MemoryMiB: 1024,
		DiskBytes: 20 << 30, User: "fvm", Accel: "auto", Backend: "qemu", Created: time.Now().UTC()}
	bs, _ := json.Marshal(s)
	return os.WriteFile(filepath.Join(dir, "spec.json"), bs, 0o644)
}

// stopHost stops the host of env's FVM_HOME.
func stopHost(fvm string, env []string) {
	cmd := exec.Command(fvm, "check")
	cmd.Env = env
	out, _ := cmd.Output()
	if pid := checkPID(string(out)); pid > 0 {
		if p, err := os.FindProcess(pid); err == nil {
			p.Signal(os.Interrupt)
		}
	}
}
