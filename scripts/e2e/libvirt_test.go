//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The libvirt backend against a real libvirtd (the system daemon, started by
// scripts/libvirtd.sh and stopped after), domains of type qemu (TCG). One VM
// goes through its whole life, in order, because each boot costs a minute.

const lvState = "/tmp/e2e-lvd" // short: libvirt's and fvm's socket paths

func virsh(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("virsh", append([]string{"-q", "-c", "qemu:///system"}, args...)...).CombinedOutput()
	return string(out), err
}

func mustVirsh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := virsh(t, args...)
	if err != nil {
		t.Fatalf("virsh %v: %v\n%s", args, err, out)
	}
	return out
}

// startLibvirtd starts the system daemon (unless one runs) and stops it
// when the test ends.
func startLibvirtd(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("libvirtd"); err != nil {
		t.Skip("no libvirtd: run scripts/setup.sh")
	}
	if os.Geteuid() != 0 {
		t.Skip("the libvirt e2e test runs the system daemon: run as root")
	}
	script, _ := filepath.Abs(filepath.Join("..", "libvirtd.sh"))
	out, err := exec.Command(script, "start", lvState).CombinedOutput()
	if err != nil {
		t.Fatalf("libvirtd.sh start: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(script, "stop", lvState).CombinedOutput(); err != nil {
			t.Logf("libvirtd.sh stop: %v\n%s", err, out)
		}
	})
	removeLeftovers(t)
	// Never libvirt's NAT network (192.168.122.0/24): nothing defines one.
	if nets := mustVirsh(t, "net-list", "--all", "--name"); strings.TrimSpace(nets) != "" {
		t.Fatalf("libvirt has networks defined (%q): this test must not run where one could start", nets)
	}
}

// setConfig writes the host's config file (the libvirt driver reads it at
// each use, so a running host sees the change).
func setConfig(t *testing.T, yaml string) {
	t.Helper()
	if err := os.WriteFile(layout.ConfigFile(), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// removeLeftovers removes what an earlier run of these tests left in the
// system daemon when it was killed before its cleanups ran (the daemon keeps
// domains in /etc/libvirt across runs): only the tests' own names, the
// domains fvm-lv* and fvm-notmine, the volumes fvm-lv* of the pool fvm and
// the pools fvmcut and fvmsmall.
func removeLeftovers(t *testing.T) {
	t.Helper()
	out, _ := virsh(t, "list", "--all", "--name")
	for _, d := range strings.Fields(out) {
		if !strings.HasPrefix(d, "fvm-lv") && d != "fvm-notmine" {
			continue
		}
		t.Logf("removing domain %s, left by an earlier run", d)
		virsh(t, "destroy", d)
		if out, err := virsh(t, "undefine", "--managed-save", "--snapshots-metadata", "--nvram", d); err != nil {
			t.Fatalf("virsh undefine %s (left by an earlier run): %v\n%s", d, err, out)
		}
	}
	// The pools of TestLibvirtBadInput's cases: a pool left defined lists
	// volumes whose files the next run's case removes first.
	for _, p := range []string{"fvmcut", "fvmsmall"} {
		if _, err := virsh(t, "pool-info", p); err == nil {
			t.Logf("removing pool %s, left by an earlier run", p)
			virsh(t, "pool-destroy", p)
			virsh(t, "pool-undefine", p)
		}
	}
	vols, _ := virsh(t, "vol-list", "fvm")
	for _, line := range strings.Split(vols, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "fvm-lv") {
			virsh(t, "vol-delete", "--pool", "fvm", f[0])
		}
	}
}

// foreignDomain defines a domain fvm did not make, named like fvm's.
func foreignDomain(t *testing.T, name string) {
	t.Helper()
	x := fmt.Sprintf(`<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><os><type arch='x86_64' machine='q35'>hvm</type></os></domain>`, name)
	f := filepath.Join(t.TempDir(), "foreign.xml")
	os.WriteFile(f, []byte(x), 0o644)
	mustVirsh(t, "define", f)
	t.Cleanup(func() { virsh(t, "undefine", name) })
}

func TestLibvirt(t *testing.T) {
	startLibvirtd(t)
	ensureImage(t)
	setConfig(t, "images:\n  warm: false\n")
	t.Cleanup(func() { setConfig(t, "images:\n  warm: false\n") })
	foreignDomain(t, "fvm-notmine")
	const name = "lv1"
	hostPort := freePort(t)

	t0 := time.Now()
	r := fvm(t, "run", "-d", "--backend", "libvirt", "--memory", "1G", "debian-local", name, "-p", fmt.Sprintf("%d:8080", hostPort))
	if r.code != 0 {
		log, _ := os.ReadFile(filepath.Join(layout.InstanceDir(name), "serial.log"))
		t.Fatalf("run -d --backend libvirt: %s\nserial log tail:\n%s", r.stderr, lastLines(string(log), 30))
	}
	t.Logf("MEASURE libvirt run -d to SSH-ready (TCG): %s", time.Since(t0))
	t.Cleanup(func() { fvm(t, "rm", "-f", name) })

	t.Run("exec", func(t *testing.T) {
		t0 := time.Now()
		if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "hostname")); got != name {
			t.Fatalf("hostname %q", got)
		}
		t.Logf("MEASURE exec over the libvirt channel: %s", time.Since(t0))
		// Booted through UEFI and the image's GRUB, whose command line makes a
		// kernel panic or oops (TCG's "Oops: int3") a reboot, not a hang.
		if out := mustFVM(t, "exec", name, "--", "cat", "/proc/cmdline"); !strings.Contains(out, "panic=5 oops=panic") {
			t.Errorf("the guest's kernel command line: %s", out)
		}
		// The guest's network is QEMU's user NIC: no bridge of the host.
		if out := mustFVM(t, "exec", name, "--", "ip", "-4", "addr"); !strings.Contains(out, "10.0.2.15") {
			t.Errorf("guest addresses: %s", out)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		x := mustVirsh(t, "dumpxml", "fvm-"+name)
		for _, want := range []string{"https://github.com/fvmhq/fvm/xmlns/libvirt/1", "<name>" + name + "</name>", "<image>debian-local</image>", "<digest>sha256:", "<user>fvm</user>", "fvm-libvirt/1", "<interface type='user'>", "org.fvm.ssh.0"} {
			if !strings.Contains(x, want) {
				t.Errorf("virsh dumpxml lacks %s", want)
			}
		}
		if out := mustVirsh(t, "list", "--all", "--name"); !strings.Contains(out, "fvm-"+name) {
			t.Errorf("virsh list --all: %s", out)
		}
	})
	t.Run("ps", func(t *testing.T) {
		out := mustFVM(t, "ps", "-a")
		if !strings.Contains(out, name) || !strings.Contains(out, "libvirt") {
			t.Errorf("fvm ps -a lacks the VM on libvirt:\n%s", out)
		}
		if strings.Contains(out, "notmine") {
			t.Errorf("fvm ps -a lists a domain fvm did not make:\n%s", out)
		}
	})
	t.Run("cp", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "in.txt")
		os.WriteFile(src, []byte("over the channel\n"), 0o644)
		mustFVM(t, "cp", src, name+":/tmp/in.txt")
		mustFVM(t, "cp", name+":/tmp/in.txt", filepath.Join(dir, "out.txt"))
		if b, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(b) != "over the channel\n" {
			t.Fatalf("round trip: %q", b)
		}
	})
	t.Run("port-forward", func(t *testing.T) {
		srv := `setsid -f perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalPort=>8080,Listen=>5,ReuseAddr=>1) or die; while($c=$s->accept){print $c "hello-from-libvirt\n"; close $c}' >/dev/null 2>&1`
		mustFVM(t, "exec", name, "--", "sh", "-c", srv)
		var line string
		for i := 0; i < 50 && line == ""; i++ {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort), time.Second); err == nil {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, _ = bufio.NewReader(c).ReadString('\n')
				c.Close()
			}
			if line == "" {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if strings.TrimSpace(line) != "hello-from-libvirt" {
			t.Fatalf("-p forward answered %q", line)
		}
	})
	t.Run("screenshot", func(t *testing.T) {
		// Text on the screen first: a login prompt alone lights too few pixels to tell from blank.
		// Written again before each of a few tries: once (CI, under load) the screen was black
		// right after the write, the guest's console still being set up by its late boot.
		var b image.Rectangle
		lit := 0
		for try := 0; try < 5 && (b.Dx() < 640 || lit < 50); try++ {
			if try > 0 {
				t.Logf("screenshot %v with %d lit samples: trying again", b, lit)
				time.Sleep(2 * time.Second)
			}
			mustFVM(t, "exec", name, "--", "sudo dmesg -n 1; printf 'libvirt-screen\n%.0s' $(seq 20) | sudo tee /dev/tty1 >/dev/null")
			png1 := filepath.Join(t.TempDir(), "s.png")
			mustFVM(t, "screenshot", name, png1)
			b, lit = litSamples(t, png1)
		}
		if b.Dx() < 640 || lit < 50 {
			t.Fatalf("screenshot %v with %d lit samples: blank", b, lit)
		}
	})
	t.Run("display", func(t *testing.T) { vncGreets(t, name) })
	t.Run("console", func(t *testing.T) {
		p := startConsole(t, name)
		p.send("\r")
		p.waitFor(t, "login:")
		p.send("\x1d") // Ctrl-]
		if code := p.wait(t); code != 0 {
			t.Fatalf("fvm console exited %d", code)
		}
	})
	t.Run("stop-start-keeps-a-file", func(t *testing.T) {
		fullOnly(t, "a second cold boot of the libvirt VM, about 70 s")
		mustFVM(t, "exec", name, "--", "sh", "-c", "echo kept > /home/fvm/kept && sync")
		mustFVM(t, "stop", name)
		if st := strings.TrimSpace(mustVirsh(t, "domstate", "fvm-"+name)); st != "shut off" {
			t.Fatalf("after fvm stop, virsh says %q", st)
		}
		t0 := time.Now()
		mustFVM(t, "start", name)
		t.Logf("MEASURE libvirt start to SSH-ready: %s", time.Since(t0))
		if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "cat", "/home/fvm/kept")); got != "kept" {
			t.Fatalf("file after stop/start: %q", got)
		}
	})
	t.Run("suspend-resume-keeps-a-process", func(t *testing.T) {
		pid := strings.TrimSpace(mustFVM(t, "exec", name, "--", "sh", "-c", "setsid -f sleep 10000 < /dev/null > /dev/null 2>&1; sleep 0.5; pgrep -n sleep"))
		t0 := time.Now()
		mustFVM(t, "suspend", name)
		t.Logf("MEASURE libvirt suspend (managed save): %s", time.Since(t0))
		if out := mustFVM(t, "ps", "-a"); !strings.Contains(out, "suspended") {
			t.Errorf("fvm ps -a after suspend:\n%s", out)
		}
		t0 = time.Now()
		mustFVM(t, "resume", name)
		mustFVM(t, "exec", name, "--", "kill", "-0", pid)
		t.Logf("MEASURE libvirt resume to exec: %s", time.Since(t0))
	})
	t.Run("host-killed", func(t *testing.T) {
		pid := hostPID()
		if pid <= 0 {
			t.Fatal("no host")
		}
		syscall.Kill(pid, syscall.SIGKILL)
		time.Sleep(time.Second)
		if st := strings.TrimSpace(mustVirsh(t, "domstate", "fvm-"+name)); st != "running" {
			t.Fatalf("after the host's kill -9 the domain is %q", st)
		}
		if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "hostname")); got != name { // a new host re-adopts it
			t.Fatalf("after re-adoption: %q", got)
		}
		if out := mustFVM(t, "ps"); !strings.Contains(out, name) {
			t.Fatalf("fvm ps after the host's restart:\n%s", out)
		}
	})
	t.Run("stopped-in-virsh", func(t *testing.T) {
		mustVirsh(t, "destroy", "fvm-"+name)
		deadline := time.Now().Add(15 * time.Second)
		for {
			out := mustFVM(t, "ps", "-a")
			if line := lineOf(out, name); strings.Contains(line, "stopped") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a VM destroyed in virsh is not stopped in fvm ps:\n%s", out)
			}
			time.Sleep(time.Second)
		}
	})
	t.Run("rm-leaves-nothing", func(t *testing.T) {
		mustFVM(t, "rm", "-f", name)
		if out, _ := virsh(t, "list", "--all", "--name"); strings.Contains(out, "fvm-"+name) {
			t.Errorf("domain left after rm: %s", out)
		}
		if out := mustVirsh(t, "vol-list", "fvm"); strings.Contains(out, "fvm-"+name) {
			t.Errorf("volumes left after rm:\n%s", out)
		}
		if _, err := os.Stat(layout.InstanceDir(name)); err == nil {
			t.Error("VM directory left after rm")
		}
		if out := mustVirsh(t, "list", "--all", "--name"); !strings.Contains(out, "fvm-notmine") {
			t.Errorf("the foreign domain is gone:\n%s", out)
		}
	})
}

// TestLibvirtBadInput: an unreachable URI and a pool too small for the base
// each fail in one clear line and leave nothing behind.
func TestLibvirtBadInput(t *testing.T) {
	startLibvirtd(t)
	ensureImage(t)
	t.Cleanup(func() { setConfig(t, "images:\n  warm: false\n") })
	check := func(t *testing.T, name, want string) {
		t.Helper()
		r := fvm(t, "create", "--backend", "libvirt", "debian-local", name)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		last := lines[len(lines)-1]
		if r.code == 0 || !strings.Contains(last, want) {
			t.Fatalf("fvm create: exit %d, last line %q, want one with %q", r.code, last, want)
		}
		if _, err := os.Stat(layout.InstanceDir(name)); err == nil {
			t.Error("a VM directory was left")
		}
		if out, _ := virsh(t, "list", "--all", "--name"); strings.Contains(out, "fvm-"+name) {
			t.Error("a domain was left")
		}
	}
	t.Run("unreachable-uri", func(t *testing.T) {
		setConfig(t, "images:\n  warm: false\nlibvirt:\n  uri: qemu+unix:///system?socket="+lvState+"/nobody-listens\n")
		check(t, "lvbad1", "no libvirt daemon listens on "+lvState+"/nobody-listens")
	})
	t.Run("no-warm-snapshot", func(t *testing.T) {
		setConfig(t, "images:\n  warm: false\n")
		r := fvm(t, "image", "warm", "--backend", "libvirt", "debian-local")
		if r.code == 0 || !strings.Contains(r.stderr, "libvirt VMs boot cold: libvirt restores a saved state only under the domain UUID") {
			t.Fatalf("fvm image warm --backend libvirt: %+v", r)
		}
	})
	t.Run("cut-upload", func(t *testing.T) {
		// The host killed while it uploads the base to a new pool: the create
		// fails in one line, and the next one uploads again and works.
		dir := filepath.Join(lvState, "cut")
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o755)
		t.Cleanup(func() {
			fvm(t, "rm", "-f", "lvcut")
			virsh(t, "pool-destroy", "fvmcut")
			virsh(t, "pool-undefine", "fvmcut")
			os.RemoveAll(dir)
		})
		setConfig(t, "images:\n  warm: false\nlibvirt:\n  pool: fvmcut\n  pool_path: "+dir+"\n")
		cmd := exec.Command(fvmBin, "create", "--backend", "libvirt", "debian-local", "lvcut")
		var se bytes.Buffer
		cmd.Stderr = &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var grown int64
		for deadline := time.Now().Add(2 * time.Minute); grown == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("no upload into the new pool")
			}
			vols, _ := filepath.Glob(filepath.Join(dir, "sha256-*"))
			for _, v := range vols {
				// Written blocks, not the size (the volume is made at its full size).
				if st, err := os.Stat(v); err == nil && st.Sys().(*syscall.Stat_t).Blocks*512 > 1<<20 {
					grown = st.Sys().(*syscall.Stat_t).Blocks * 512
				}
			}
		}
		syscall.Kill(hostPID(), syscall.SIGKILL)
		err := cmd.Wait()
		msg := strings.TrimSpace(se.String())
		lines := strings.Split(msg, "\n")
		t.Logf("create under a killed upload (%d bytes in): %v: %s", grown, err, msg)
		if err == nil || !strings.HasPrefix(lines[len(lines)-1], "fvm: ") {
			t.Fatalf("create with its upload cut: %v, %q", err, msg)
		}
		// What the killed create left is usable or removable, and the base
		// is uploaded again, whole.
		if r := fvm(t, "ps", "-a"); r.code != 0 {
			t.Fatalf("ps after the cut: %+v", r)
		}
		fvm(t, "rm", "-f", "lvcut")
		r := fvm(t, "create", "--backend", "libvirt", "debian-local", "lvcut")
		if r.code != 0 {
			t.Fatalf("create after the cut upload: %+v", r)
		}
		want := imageNamed(t, "debian-local").Digest
		vol := filepath.Join(dir, strings.Replace(want, ":", "-", 1)+".qcow2")
		if got, err := fileDigest(vol); err != nil || got != want {
			t.Fatalf("the base in the pool after the cut: %s %v, want %s", got, err, want)
		}
		mustFVM(t, "rm", "-f", "lvcut")
	})
	t.Run("full-pool", func(t *testing.T) {
		dir := filepath.Join(lvState, "small")
		os.MkdirAll(dir, 0o755)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a small tmpfs: %v %s", err, out)
		}
		t.Cleanup(func() {
			virsh(t, "pool-destroy", "fvmsmall")
			virsh(t, "pool-undefine", "fvmsmall")
			exec.Command("umount", dir).Run()
		})
		setConfig(t, "images:\n  warm: false\nlibvirt:\n  pool: fvmsmall\n  pool_path: "+dir+"\n")
		check(t, "lvbad2", "free, the base sha256:")
		if out := mustVirsh(t, "vol-list", "fvmsmall"); strings.TrimSpace(out) != "" {
			t.Errorf("volumes left in the small pool:\n%s", out)
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lineOf(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}

// fileDigest is "sha256:HEX" of a file's bytes.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil)), nil
}

// litSamples is a screenshot's bounds and how many of its pixels, one in 16,
// are not black.
func litSamples(t *testing.T, path string) (image.Rectangle, int) {
	t.Helper()
	img := pngFile(t, path)
	lit := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			if r, g, bl, _ := img.At(x, y).RGBA(); r+g+bl > 0x3000 {
				lit++
			}
		}
	}
	return b, lit
}
