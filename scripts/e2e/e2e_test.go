//go:build e2e

// Package e2e boots real VMs with the fvm binary (FVM_BIN) and checks results from
// inside them. Run with `make e2e`. FVM_E2E_HOME reuses a state dir (and its
// built image) across runs; by default every run starts from an empty one.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/driver/qemu"
	"github.com/fvmhq/fvm/core/store"
)

var (
	fvmBin string
	layout store.Layout
)

func TestMain(m *testing.M) {
	fvmBin = os.Getenv("FVM_BIN")
	if fvmBin == "" {
		fmt.Println("SKIP: FVM_BIN is not set: run `make e2e`")
		os.Exit(0)
	}
	home := os.Getenv("FVM_E2E_HOME")
	if home == "" {
		var err error
		if home, err = os.MkdirTemp("", "fvm-e2e."); err != nil {
			panic(err)
		}
		defer os.RemoveAll(home)
	}
	os.Setenv("FVM_HOME", home)
	// Every VM's sound goes to sound.wav in its directory (the host started on
	// demand inherits this): the sound card is the one every host gives, and
	// TestSound reads what the guest played.
	os.Setenv(qemu.AudioDevEnv, "wav")
	layout = store.DefaultLayout()
	// Warm snapshots are made on purpose only (TestVMLifecycle's first boot,
	// TestWarmClones): a build after every cold boot would crowd the other tests.
	setAutoWarm(false)
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// cleanup removes every VM and stops the host, so no QEMU outlives the tests.
func cleanup() {
	out, _ := exec.Command(fvmBin, "ls", "--format", "json").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, `"name": "`); i >= 0 {
			name := strings.SplitN(line[i+9:], `"`, 2)[0]
			for _, l := range guestCrashLines(serialLogOf(layout, name)) {
				fmt.Printf("%s in vm %s: %s\n", guestCrashMark, name, l)
			}
			exec.Command(fvmBin, "rm", "-f", name).Run()
		}
	}
	if pid := hostPID(); pid > 0 {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}

func hostPID() int {
	info, err := client.New(layout.SocketPath()).Ping(context.Background(), 2*time.Second)
	if err != nil {
		return 0
	}
	return info.PID
}

type result struct {
	stdout, stderr string
	code           int
}

// fvm runs the binary and returns its output and exit status.
func fvm(t *testing.T, args ...string) result {
	t.Helper()
	return fvmEnv(t, nil, args...)
}

// fvmEnv is fvm with extra environment variables (KEY=VALUE): parallel tests
// cannot use t.Setenv.
func fvmEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return fvmTimeout(t, 15*time.Minute, env, args...)
}

// fvmTimeout is fvmEnv with a time limit of its own (image builds under emulation).
func fvmTimeout(t *testing.T, limit time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	noteGuestCrashes(t, layout, vmNames(args)...)
	cmd := exec.CommandContext(ctx, fvmBin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fvm %v: %v", args, err)
	}
	t.Logf("$ fvm %s → %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func mustFVM(t *testing.T, args ...string) string {
	t.Helper()
	return mustFVMEnv(t, nil, args...)
}

func mustFVMEnv(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := fvmEnv(t, env, args...)
	if r.code != 0 {
		t.Fatalf("fvm %v failed (%d): %s", args, r.code, r.stderr)
	}
	return r.stdout
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func ensureImage(t *testing.T) {
	t.Helper()
	t0 := time.Now()
	mustFVM(t, "image", "build", "debian")
	t.Logf("image ready in %s", time.Since(t0))
	t0 = time.Now()
	mustFVM(t, "image", "build", "debian") // unchanged inputs: skipped
	if d := time.Since(t0); d > 30*time.Second {
		t.Errorf("unchanged rebuild took %s; it should be skipped", d)
	}
}

// TestVMLifecycle is one VM's whole life, in order, because each boot under TCG costs ~45 s.
func TestVMLifecycle(t *testing.T) {
	ensureImage(t)
	const name = "e2e1"
	hostPort := freePort(t)

	t0 := time.Now()
	// This cold boot makes the host warm the image for its shape by itself, in
	// the background: TestWarmClones and later tests clone from that snapshot.
	setAutoWarm(true)
	r := fvm(t, "run", "-d", "--cold", "debian-local", name, "-p", fmt.Sprintf("%d:8080", hostPort), "--memory", "1G")
	setAutoWarm(false)
	if r.code != 0 {
		serial := serialLogOf(layout, name)
		t.Fatalf("run -d failed %s:\n%s\nserial log:\n%s", serialEnd(serial), r.stderr, tailFile(serial))
	}
	t.Logf("MEASURE run -d to SSH-ready: %s", time.Since(t0))
	for _, phase := range []string{"Created VM", "hypervisor up", "SSH ready", "fvm wait " + name} {
		if !strings.Contains(r.stderr, phase) {
			t.Errorf("run output lacks phase %q", phase)
		}
	}
	t0 = time.Now()
	mustFVM(t, "exec", name, "--", "true")
	first := time.Since(t0)
	t.Logf("MEASURE first exec right after run -d (cloud-init may still run): %s", first)
	// The user's manager came up while the guest booted (linger), and run -d
	// returned once a session ran: the first command waits for neither.
	if out := mustFVM(t, "exec", name, "--", "loginctl show-user \"$USER\" -p Linger --value; systemctl is-active \"user@$(id -u).service\""); strings.Fields(out)[0] != "yes" || !strings.Contains(out, "active") {
		t.Errorf("linger and the user's manager: %q", out)
	}
	coldBootWaits(t, name)
	var ds []time.Duration
	for i := 0; i < 3; i++ {
		t1 := time.Now()
		mustFVM(t, "exec", name, "--", "true")
		ds = append(ds, time.Since(t1))
	}
	slices.Sort(ds)
	t.Logf("MEASURE exec after that: median %s", ds[1])
	if first > 3*ds[1]+time.Second { // a guest still busy with cloud-init runs anything slower
		t.Errorf("the first exec after run -d took %s, the next ones %s", first, ds[1])
	}
	t0 = time.Now()
	if out := fvm(t, "wait", name); out.code != 0 || !strings.Contains(out.stderr, "-init done") {
		t.Errorf("fvm wait: %+v", out)
	}
	t.Logf("MEASURE fvm wait (cloud-init to finish) after run -d: %s", time.Since(t0))

	t.Run("hostname", func(t *testing.T) {
		if got := strings.TrimSpace(mustFVM(t, "ssh", name, "--", "cat", "/etc/hostname")); got != name {
			t.Fatalf("hostname %q, want %q", got, name)
		}
	})
	t.Run("sudo", func(t *testing.T) { mustFVM(t, "exec", name, "--", "sudo", "-n", "true") })
	t.Run("debian-13", func(t *testing.T) { // `fvm image build debian` builds the default release
		if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "cut -d. -f1 /etc/debian_version; uname -m")); got != "13\n"+unameArch() {
			t.Fatalf("debian-local runs %q, want Debian 13 on %s", got, unameArch())
		}
	})
	t.Run("cloud-init-clean", func(t *testing.T) {
		// Every part of our seed must apply on the image: fvm-init's units
		// (fvm's image booted directly), or cloud-init's "done", not "error".
		firstBootClean(t, name)
	})
	t.Run("exit-status", func(t *testing.T) {
		if r := fvm(t, "ssh", name, "--", "sh", "-c", "echo out; echo err >&2; exit 7"); r.code != 7 || r.stdout != "out\n" || !strings.Contains(r.stderr, "err") {
			t.Fatalf("got %+v, want exit 7 with out/err split", r)
		}
	})
	t.Run("disk-grown", func(t *testing.T) {
		out := mustFVM(t, "exec", name, "df", "--output=size", "-B1G", "/")
		if !strings.Contains(out, "19") && !strings.Contains(out, "20") {
			t.Errorf("root filesystem not grown to ~20G: %s", out)
		}
	})
	t.Run("port-forward", func(t *testing.T) {
		// perl-base is in every Debian: a one-line TCP server in the guest.
		srv := `setsid -f perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalPort=>8080,Listen=>5,ReuseAddr=>1) or die; while($c=$s->accept){print $c "hello-from-guest\n"; close $c}' >/dev/null 2>&1`
		mustFVM(t, "ssh", name, "--", "sh", "-c", srv)
		var line string
		for i := 0; i < 50 && line == ""; i++ {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort), time.Second); err == nil {
				c.SetDeadline(time.Now().Add(3 * time.Second))
				line, _ = bufio.NewReader(c).ReadString('\n')
				c.Close()
			}
			if line == "" {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if strings.TrimSpace(line) != "hello-from-guest" {
			t.Fatalf("forwarded port answered %q", line)
		}
	})
	t.Run("ssh-config", func(t *testing.T) {
		if _, err := exec.LookPath("ssh"); err != nil {
			t.Skip("no ssh client")
		}
		cfg := filepath.Join(t.TempDir(), "config")
		os.WriteFile(cfg, []byte(mustFVM(t, "ssh-config", name)), 0o600)
		defer exec.Command("ssh", "-F", cfg, "-O", "exit", name+".fvm").Run() // the shared connection's master
		for i := 0; i < 2; i++ {                                              // the second run goes over the first's connection (ControlMaster)
			out, err := exec.Command("ssh", "-F", cfg, "-o", "BatchMode=yes", name+".fvm", "hostname").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != name {
				t.Fatalf("plain ssh with ssh-config (run %d): %v: %s", i, err, out)
			}
		}
		if out, err := exec.Command("ssh", "-F", cfg, "-O", "check", name+".fvm").CombinedOutput(); err != nil {
			t.Errorf("no shared connection after two ssh runs: %v: %s", err, out)
		}
	})
	t.Run("exec", func(t *testing.T) { execChecks(t, name) })
	t.Run("listings", func(t *testing.T) {
		if out := mustFVM(t, "ps"); !strings.Contains(out, name) || !strings.Contains(out, "running") {
			t.Errorf("ps: %s", out)
		}
		if out := mustFVM(t, "ls", "--format", "json"); !strings.Contains(out, `"state": "running"`) {
			t.Errorf("ls json: %s", out)
		}
		if out := mustFVM(t, "inspect", name); !strings.Contains(out, `"sshPort"`) {
			t.Errorf("inspect: %s", out)
		}
		if out := mustFVM(t, "logs", name); !strings.Contains(out, "Linux version") && !strings.Contains(out, "cloud-init") {
			t.Errorf("logs hold no boot output (%d bytes)", len(out))
		}
	})

	t.Run("concurrent-start", func(t *testing.T) {
		r := fvm(t, "start", name)
		if r.code == 0 || !strings.Contains(r.stderr, "already running") {
			t.Fatalf("start of running vm: %+v", r)
		}
	})

	t.Run("survives-stop-start", func(t *testing.T) {
		mustFVM(t, "exec", name, "sh", "-c", "echo kept > ~/marker && sync")
		t0 := time.Now()
		mustFVM(t, "stop", name)
		t.Logf("MEASURE graceful stop: %s", time.Since(t0))
		if out := mustFVM(t, "ps", "-a"); !strings.Contains(out, "stopped") {
			t.Fatalf("after stop: %s", out)
		}
		if _, err := os.Stat(filepath.Join(layout.InstanceDir(name), qemu.PIDFile)); err == nil {
			t.Error("pid file left after stop")
		}
		// Two starts at once: one boots the VM, the other is refused with a clear reason.
		t0 = time.Now()
		results := make(chan result, 2)
		for i := 0; i < 2; i++ {
			go func() { results <- fvm(t, "start", name) }()
		}
		r1, r2 := <-results, <-results
		t.Logf("MEASURE start to SSH-ready: %s", time.Since(t0))
		if r1.code != 0 {
			r1, r2 = r2, r1
		}
		if r1.code != 0 || r2.code == 0 || !(strings.Contains(r2.stderr, "already running") || strings.Contains(r2.stderr, "already starting") || strings.Contains(r2.stderr, "busy")) {
			t.Fatalf("two concurrent starts: want one success and one clear refusal, got %+v and %+v", r1, r2)
		}
		if got := strings.TrimSpace(mustFVM(t, "exec", name, "cat", "marker")); got != "kept" {
			t.Fatalf("marker after restart: %q", got)
		}
	})

	t.Run("kernel-panic-reboots", func(t *testing.T) {
		// A directly booted guest reboots 5 s after a kernel panic or oops
		// (panic=5 oops=panic on its command line) rather than hang: under TCG
		// a cold boot now and then dies of "Oops: int3".
		if got := strings.Fields(mustFVM(t, "exec", name, "--", "cat", "/proc/sys/kernel/panic", "/proc/sys/kernel/panic_on_oops")); strings.Join(got, " ") != "5 1" {
			t.Fatalf("kernel.panic and kernel.panic_on_oops in the guest: %q, want 5 and 1", got)
		}
		fullOnly(t, "a kernel panic and the cold boot after it, about 70 s")
		mustFVM(t, "exec", name, "sh", "-c", "echo before-panic > ~/panic-marker && sync")
		t0 := time.Now()
		fvm(t, "exec", name, "--", "sudo", "sh", "-c", "echo c > /proc/sysrq-trigger") // its session dies with the kernel
		for {
			if time.Since(t0) > 6*time.Minute {
				t.Fatal("the guest did not come back within 6 minutes of its kernel panic")
			}
			time.Sleep(5 * time.Second)
			r := fvm(t, "exec", name, "--", "sh", "-c", "cut -d. -f1 /proc/uptime; cat ~/panic-marker")
			if f := strings.Fields(r.stdout); r.code == 0 && len(f) == 2 {
				up, _ := strconv.Atoi(f[0])
				if time.Duration(up)*time.Second > time.Since(t0) || f[1] != "before-panic" {
					t.Fatalf("after the panic: uptime %ss (the panic was %s ago), marker %q", f[0], time.Since(t0).Round(time.Second), f[1])
				}
				t.Logf("MEASURE kernel panic → rebooted and answering: %s", time.Since(t0).Round(time.Second))
				break
			}
		}
		if out, _ := exec.Command(fvmBin, "logs", name).Output(); !strings.Contains(string(out), "sysrq triggered crash") && !strings.Contains(string(out), "Kernel panic") {
			t.Errorf("the panic is not in the serial log")
		}
	})

	suspendChecks(t, name)

	t.Run("host-kill-readopt", func(t *testing.T) {
		pid := hostPID()
		if pid == 0 {
			t.Fatal("no host")
		}
		qemuPID := readPID(t, name)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if err := syscall.Kill(qemuPID, 0); err != nil {
			t.Fatalf("qemu died with the host: %v", err)
		}
		// The next command starts a new host, which re-adopts the VM.
		if out := mustFVM(t, "ps"); !strings.Contains(out, name) || !strings.Contains(out, "running") {
			t.Fatalf("after host kill: %s", out)
		}
		if hostPID() == pid {
			t.Fatal("host was not replaced")
		}
		if got := strings.TrimSpace(mustFVM(t, "ssh", name, "--", "cat", "marker")); got != "kept" {
			t.Fatalf("after re-adopt: %q", got)
		}
	})

	t.Run("host-key-refused", func(t *testing.T) { hostKeyRefused(t, name) })

	t.Run("rm", func(t *testing.T) {
		if r := fvm(t, "rm", name); r.code == 0 || !strings.Contains(r.stderr, "rm -f") {
			t.Fatalf("rm of running vm must refuse: %+v", r)
		}
		qemuPID := readPID(t, name)
		mustFVM(t, "rm", "-f", name)
		if _, err := os.Stat(layout.InstanceDir(name)); !os.IsNotExist(err) {
			t.Errorf("vm dir left: %v", err)
		}
		if running(qemuPID) {
			t.Errorf("qemu %d still alive after rm -f", qemuPID)
		}
	})
}

// TestBadInput: every error is one clear line, exits non-zero and leaves nothing.
func TestBadInput(t *testing.T) {
	notDisk := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notDisk, []byte("not a disk\n"), 0o644)
	bases, _ := os.ReadDir(layout.BasesDir())
	for _, args := range [][]string{
		{"run", "-d", notDisk},
		{"run", "-d", "no-such-image"},
		{"run", "-d", "debian-local", "Bad_Name"},
		{"run", "-d", "debian-local", "--memory", "lots"},
		{"run", "-d", "debian-local", "-p", "80"},
		{"run", "-d", "/no/such/disk.qcow2"},
		{"ssh", "ghost"},
		{"stop", "ghost"},
		{"image", "build", "debian", "--release", "11"},
		{"image", "build", "debian", "--arch", "riscv64"},
		{"image", "build", "debian", "--packages", "jq,Not_A_Package"},
		{"image", "build", "debian", "--name", "Bad Name"},
		{"image", "build", "fedora"},
	} {
		r := fvm(t, args...)
		msg := strings.TrimSpace(r.stderr)
		if r.code == 0 || msg == "" || strings.Count(msg, "\n") > 0 || !strings.HasPrefix(msg, "fvm: ") {
			t.Errorf("fvm %v: want one-line error and non-zero exit, got %d %q", args, r.code, msg)
		}
	}
	entries, _ := os.ReadDir(layout.VMsDir())
	if len(entries) != 0 {
		t.Errorf("bad input left VM dirs: %v", entries)
	}
	if after, _ := os.ReadDir(layout.BasesDir()); len(after) != len(bases) {
		t.Errorf("bad input changed the bases dir: %d entries before, %d after", len(bases), len(after))
	}
}

// TestInterruptedRunRm: Ctrl-C while `run --rm` waits for SSH removes the VM and its QEMU.
func TestInterruptedRunRm(t *testing.T) {
	ensureImage(t)
	cmd := exec.Command(fvmBin, "run", "--rm", "debian-local", "ctrlc", "--", "true")
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(se.String(), "Waiting for SSH") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	qemuPID := readPID(t, "ctrlc")
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	t.Logf("stderr:\n%s", se.String())
	if _, err := os.Stat(layout.InstanceDir("ctrlc")); !os.IsNotExist(err) {
		t.Errorf("interrupted run --rm left the vm dir: %v", err)
	}
	if running(qemuPID) {
		t.Errorf("qemu %d still alive", qemuPID)
	}
}

// running reports whether pid is still a live process a few seconds on. A killed
// QEMU that an earlier host started is reparented, and its zombie lingers until
// init reaps it: that is no running process.
func running(pid int) bool {
	for i := 0; i < 50; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || syscall.Kill(pid, 0) != nil {
			return false
		}
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// unameArch is what `uname -m` says in a guest of the host's architecture.
func unameArch() string {
	if runtime.GOARCH == "arm64" {
		return "aarch64"
	}
	return "x86_64"
}

func readPID(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout.InstanceDir(name), qemu.PIDFile))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid <= 0 {
		t.Fatalf("bad pid file %q", b)
	}
	return pid
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// setAutoWarm writes images.warm into the config file, which the host reads on
// each use: whether a cold boot makes its image's warm snapshot by itself.
func setAutoWarm(on bool) {
	os.MkdirAll(layout.ConfigDir, 0o755)
	os.WriteFile(layout.ConfigFile(), []byte(fmt.Sprintf("images:\n  warm: %v\n", on)), 0o644)
}
