package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// coldRun boots a VM of image cold with `fvm run -d` and returns the time to
// SSH, with the phases: the host's and the serial console's.
func (b *bench) coldRun(name, image string) (time.Duration, string, error) {
	b.vms = append(b.vms, name)
	stop := make(chan struct{})
	t0 := time.Now()
	marks := b.watchSerial(name, t0, stop)
	_, err := b.run("run", "-d", "--cold", image, name, "--memory", "1G")
	took := time.Since(t0)
	close(stop)
	serial := <-marks
	if err != nil {
		return 0, "", err
	}
	return took, b.startPhases(name) + "; " + serial, nil
}

// benchBoot measures, in one run: a cold `fvm run -d` to SSH of fvm's lean
// image and of its classic one, bare QEMU booting the lean image with the
// same seed to SSH, suspend (time, state size), resume to SSH, and a warm
// clone's `run -d` to SSH; plus QEMU's resident memory.
func benchBoot(b *bench) error {
	b.idleRSS = rssMiB(b.hostPID())
	// The classic image, the lean one, then bare QEMU booting the lean one
	// the way fvm did, each alone, twice over: boots here vary by tens of
	// percent from one minute to the next (steal time), so each side is the
	// mean of two, taken in turns. Bare QEMU's SSH wait starts when the guest
	// agent answers, as fvm's host does for its own image (attempts made
	// before the guest's network is up are not dropped by QEMU's port
	// forward: the guest serves each later); for the note, once more
	// polling SSH from the start. The fvm VM is suspended meanwhile.
	const cold = "bench-cold"
	var classicTime, coldTime, floor time.Duration
	var classicPhases, coldPhases, cmdline string
	var rss float64
	var suspend time.Duration
	var stateMB float64
	for i := 0; i < 2; i++ {
		d, ph, err := b.coldRun("bench-classic", classicImage)
		if err != nil {
			return err
		}
		b.run("rm", "-f", "bench-classic")
		classicTime, classicPhases = classicTime+d/2, ph
		name := cold
		if i == 0 {
			name = "bench-lean"
		}
		d, ph, err = b.coldRun(name, "debian-local")
		if err != nil {
			return err
		}
		coldTime, coldPhases = coldTime+d/2, ph
		if _, err := b.run("wait", name); err != nil {
			return err
		}
		if i == 1 {
			rss = b.qemuRSS(name)
		}
		out, _ := b.run("exec", name, "--", "cat /proc/cmdline") // what bare QEMU boots the kernel with, when fvm boots it directly
		cmdline = strings.TrimSpace(out)
		t0 := time.Now()
		if _, err := b.run("suspend", name); err != nil {
			return err
		}
		if i == 1 {
			suspend = time.Since(t0)
			if st, _ := os.Stat(filepath.Join(b.home, "data", "vms", name, "state.qemu")); st != nil {
				stateMB = float64(st.Size()) / (1 << 20)
			}
		}
		bare, err := b.bareQEMU(name, cmdline, true)
		if err != nil {
			return fmt.Errorf("bare qemu: %w", err)
		}
		floor += bare / 2
		if i == 0 {
			b.run("rm", "-f", name)
		}
	}
	naive, err := b.bareQEMU(cold, cmdline, false)
	if err != nil {
		return fmt.Errorf("bare qemu: %w", err)
	}
	b.add(Row{Name: "cold fvm run -d → SSH (mean of 2)", Value: secs(coldTime), Unit: "s", Versus: "bare qemu-system-x86_64, same image, seed and command line, SSH once its agent answers (mean of 2, in turns)", Against: secs(floor), Target: "≈ 1× (fvm adds nothing)",
		Note: fmt.Sprintf("%s; bare QEMU polling SSH from the start: %.1f s", coldPhases, naive.Seconds())})
	b.add(Row{Name: "fvm's image (lean) cold run -d → SSH (mean of 2)", Value: secs(coldTime), Unit: "s", Versus: "the classic recipe's image (mean of 2, in turns)", Against: secs(classicTime), Target: "≤ 0.6×", Note: "classic: " + classicPhases})
	b.add(Row{Name: "suspend (1 GiB guest, cloud-init done)", Value: secs(suspend), Unit: "s", Note: fmt.Sprintf("state %.0f MiB", stateMB)})
	t0 := time.Now()
	if _, err := b.run("start", cold); err != nil {
		return err
	}
	b.add(Row{Name: "resume → SSH", Value: secs(time.Since(t0)), Unit: "s", Versus: "cold run -d → SSH (mean of 2)", Against: secs(coldTime), Target: "≤ 0.05×", Note: b.startPhases(cold)})

	t0 = time.Now()
	if _, err := b.run("image", "warm", "debian-local", "--memory", "1G"); err != nil {
		return err
	}
	warmBuild := time.Since(t0)
	const clone = "bench-clone"
	b.vms = append(b.vms, clone)
	t0 = time.Now()
	out, err := b.runErr("run", "-d", "debian-local", clone, "--memory", "1G")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "clone of its warm snapshot") || strings.Contains(out, "booted cold") {
		return fmt.Errorf("the second VM was not a working clone: %s", out)
	}
	first := time.Since(t0)
	cloneRSS := b.qemuRSS(clone)
	const third = "bench-clone2"
	b.vms = append(b.vms, third)
	t0 = time.Now()
	if _, err := b.run("run", "-d", "debian-local", third, "--memory", "1G"); err != nil {
		return err
	}
	second := time.Since(t0)
	b.add(Row{Name: "warm clone run -d → SSH (mean of 2)", Value: secs((first + second) / 2), Unit: "s", Versus: "cold run -d → SSH (mean of 2)", Against: secs(coldTime), Target: "≤ 0.05×",
		Note: fmt.Sprintf("%.2f s and %.2f s; %s; snapshot made (or found) in %.0f s", first.Seconds(), second.Seconds(), b.startPhases(clone), warmBuild.Seconds())})
	if err := b.spareRow(secs(coldTime)); err != nil {
		return err
	}
	b.add(Row{Name: "QEMU RSS, 1 GiB guest after boot", Value: rss, Unit: "MiB", Versus: "clone's", Against: cloneRSS,
		Note: fmt.Sprintf("TCG translation cache %s", tbNote())})
	b.add(Row{Name: "host RSS with 3 VMs", Value: rssMiB(b.hostPID()), Unit: "MiB", Versus: "idle", Against: b.idleRSS})
	return nil
}

// spareRow measures `run -d` handed a spare clone (fvm image warm --spare),
// beside the VMs the rows before left running, and what the frozen spare
// costs while it waits; the spare is turned off after.
func (b *bench) spareRow(cold float64) error {
	warm := []string{"image", "warm", "debian-local", "--memory", "1G"}
	t0 := time.Now()
	if _, err := b.run(append(warm, "--spare")...); err != nil {
		return err
	}
	made := time.Since(t0)
	defer b.run(append(warm, "--spare=false")...)
	var spareRSS float64
	if pids, _ := filepath.Glob(filepath.Join(b.home, "data", "vms", ".creating-spare-*", "qemu.pid")); len(pids) == 1 {
		if bs, err := os.ReadFile(pids[0]); err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(bs)))
			spareRSS = rssMiB(pid)
		}
	}
	const name = "bench-spare"
	b.vms = append(b.vms, name)
	t0 = time.Now()
	if _, err := b.run("run", "-d", "debian-local", name, "--memory", "1G"); err != nil {
		return err
	}
	took := time.Since(t0)
	phases := b.startPhases(name)
	if !strings.Contains(phases, "via spare") {
		return fmt.Errorf("bench-spare was not handed the spare: %s", phases)
	}
	b.add(Row{Name: "spare clone run -d → SSH (fvm image warm --spare)", Value: secs(took), Unit: "s", Versus: "cold run -d → SSH (mean of 2)", Against: cold, Target: "≤ 0.05×",
		Note: fmt.Sprintf("%s; beside 3 running VMs; the spare made in %.1f s, its QEMU frozen: RSS %.0f MiB, no CPU", phases, made.Seconds(), spareRSS)})
	return nil
}

// hostPID is the running host's pid (fvm check's line). check exits 1 when
// the host lacks something (KVM here): its lines are there all the same.
func (b *bench) hostPID() int {
	out, _ := b.run("check") // its lines are there even when it exits 1
	return checkPID(out)
}

// checkPID is the host's pid in `fvm check`'s output: its "host" line ends "(pid N)".
func checkPID(out string) int {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "host ") {
			if i := strings.LastIndex(l, "(pid "); i >= 0 {
				pid, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(l[i+5:]), ")"))
				return pid
			}
		}
	}
	return 0
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func tbNote() string {
	if v := os.Getenv("FVM_TCG_CACHE_MIB"); v != "" {
		return v + " MiB (FVM_TCG_CACHE_MIB)"
	}
	return "fvm's default"
}

// runErr runs fvm and returns its stderr (the phases).
func (b *bench) runErr(args ...string) (string, error) {
	cmd := exec.Command(b.fvm, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("fvm %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// qemuRSS is the resident memory of a VM's QEMU in MiB.
func (b *bench) qemuRSS(name string) float64 {
	var v api.VM
	out, err := b.run("inspect", name)
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.PID == 0 {
		return 0
	}
	return rssMiB(v.PID)
}

func rssMiB(pid int) float64 {
	bs, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(bs), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// bareQEMU boots the image with qemu-system-x86_64 and the VM's own seed,
// with nothing of fvm in between, and returns the time to SSH. It boots the
// way fvm booted the VM like: through UEFI, or (fvm's own image) its kernel
// directly with cmdline. gated: with a guest agent channel, and SSH tried
// once the agent answers.
func (b *bench) bareQEMU(like, cmdline string, gated bool) (time.Duration, error) {
	var imgs []api.Image
	out, err := b.run("images", "--format", "json")
	if err != nil || json.Unmarshal([]byte(out), &imgs) != nil {
		return 0, fmt.Errorf("images: %v", err)
	}
	base := ""
	for _, im := range imgs {
		if im.Name == "debian-local" {
			base = im.Path
		}
	}
	vmDir := filepath.Join(b.home, "data", "vms", like)
	dir, err := os.MkdirTemp("", "bench-bare.")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	seed := filepath.Join(dir, "seed.iso")
	if bs, err := os.ReadFile(filepath.Join(vmDir, store.SeedFile)); err == nil {
		os.WriteFile(seed, bs, 0o600)
	} else {
		return 0, err
	}
	overlay := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay, "20G").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("qemu-img: %v %s", err, out)
	}
	vars := filepath.Join(dir, "vars.fd")
	bs, _ := os.ReadFile("/usr/share/OVMF/OVMF_VARS_4M.fd")
	os.WriteFile(vars, bs, 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	firmware := []string{"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd", "-drive", "if=pflash,format=raw,file=" + vars}
	// The NIC's address is the VM's own: its seed's network config names it.
	var facts struct {
		MAC string `json:"mac"`
	}
	if bs, err := os.ReadFile(filepath.Join(vmDir, qemu.FactsFile)); err != nil || json.Unmarshal(bs, &facts) != nil || facts.MAC == "" {
		return 0, fmt.Errorf("the NIC address of %s: none in its %s (%v)", like, qemu.FactsFile, err)
	}
	nic := "virtio-net-pci,netdev=n0,mac=" + facts.MAC
	if k := filepath.Join(vmDir, qemu.BootKernel); fileExists(k) {
		firmware = []string{"-kernel", k, "-initrd", filepath.Join(vmDir, qemu.BootInitrd), "-append", cmdline}
		nic += ",romfile="
	}
	t0 := time.Now()
	args := append([]string{"-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "1024"}, firmware...)
	args = append(args,
		"-drive", "file="+overlay+",if=virtio,format=qcow2", "-drive", "file="+seed+",if=virtio,format=raw,readonly=on",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22", port), "-device", nic,
		"-device", "virtio-rng-pci", "-display", "none", "-serial", "file:"+filepath.Join(dir, "serial.log"))
	agent := filepath.Join(dir, "qga.sock")
	if gated {
		args = append(args, "-device", "virtio-serial-pci,id=vser0", "-chardev", "socket,id=qga0,server=on,wait=off,path="+agent,
			"-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0")
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	hostKey, _ := os.ReadFile(filepath.Join(vmDir, store.HostKeyPubFile))
	pem, err := os.ReadFile(filepath.Join(b.home, "data", "ssh", store.UserKeyName))
	if err != nil {
		return 0, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t := sshx.Target{Addr: fmt.Sprintf("127.0.0.1:%d", port), User: "fvm", Signer: signer, HostKey: strings.TrimSpace(string(hostKey))}
	if gated {
		actx, acancel := context.WithTimeout(ctx, driver.BootAgentBound("tcg"))
		if driver.AwaitAgent(actx, func(ctx context.Context) error { return qemu.PingAgent(ctx, agent) }) {
			t = t.Up()
		}
		acancel()
	}
	cl, err := sshx.WaitReady(ctx, t, nil)
	if err != nil {
		// The guest's console says why (the directory goes with this run).
		serial, _ := os.ReadFile(filepath.Join(dir, "serial.log"))
		lines := strings.Split(strings.TrimSpace(string(serial)), "\n")
		return 0, fmt.Errorf("%w; the serial console's last lines: %q", err, lines[max(0, len(lines)-8):])
	}
	defer cl.Close()
	// Ready as fvm's host counts it: a command ran (the login is set up).
	if _, err := cl.Exec(ctx, "true", nil, nil, nil); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
