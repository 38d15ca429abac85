//go:build e2e

package e2evz

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/store"
)

// The checks of the first run on a Mac (issue 19) that only a Mac can make:
// the app serves the socket of the FVM_HOME it was started with, a VM whose
// host runs over SSH refuses a display with the reason instead of aborting,
// the app's console window loads its page (App Transport Security lets it
// reach 127.0.0.1), and a tone plays through vz's virtio sound.

// appBin is the menu-bar app in the bundle under test.
func appBin() string {
	return filepath.Join(filepath.Dir(fvmBin), "fvm-app") // bin/fvm.app/Contents/MacOS/fvm-app
}

// runIn runs the bundle's CLI with another FVM_HOME.
func runIn(t *testing.T, fvmHome string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fvmBin, args...)
	cmd.Env = append(os.Environ(), "FVM_HOME="+fvmHome)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fvm %v: %v", args, err)
	}
	t.Logf("$ FVM_HOME=%s fvm %s → %d\n%s%s", fvmHome, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// startApp starts the bundle's app as the CLI does (its executable, this
// environment plus FVM_HOME) and waits until it serves that FVM_HOME's socket.
func startApp(t *testing.T, fvmHome string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(appBin())
	cmd.Env = append(os.Environ(), "FVM_HOME="+fvmHome)
	logf, _ := os.Create(filepath.Join(fvmHome, "app.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	sock := filepath.Join(fvmHome, "run", store.SocketName)
	for i := 0; i < 200; i++ {
		if info, err := client.New(sock).Ping(context.Background(), time.Second); err == nil {
			if info.PID != cmd.Process.Pid {
				t.Fatalf("%s is served by pid %d, not the app (%d)", sock, info.PID, cmd.Process.Pid)
			}
			return cmd
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(fvmHome, "app.log"))
	t.Fatalf("the app started with FVM_HOME=%s does not serve %s:\n%s", fvmHome, sock, b)
	return nil
}

// TestAppServesItsFVMHome: the app started with FVM_HOME (as the CLI starts
// it) hosts that state dir: its socket answers with the app's pid, and the CLI
// with the same FVM_HOME lists its VMs through it. With fvm.app installed, the
// CLI itself starts the app for an FVM_HOME that has no host yet.
func TestAppServesItsFVMHome(t *testing.T) {
	home1, _ := os.MkdirTemp("/tmp", "fvm-app.") // short: socket paths
	defer os.RemoveAll(home1)
	startApp(t, home1)
	if r := runIn(t, home1, "ps", "-a"); r.code != 0 {
		t.Fatalf("ps through the app: %s", r.stderr)
	}
	home, _ := os.UserHomeDir()
	installed := ""
	for _, p := range []string{filepath.Join(home, "Applications", "fvm.app"), "/Applications/fvm.app"} {
		if _, err := os.Stat(p); err == nil {
			installed = p
			break
		}
	}
	if installed == "" {
		t.Log("fvm.app is not installed (make install): the CLI's own launch of the app is not checked")
		return
	}
	home2, _ := os.MkdirTemp("/tmp", "fvm-cli.")
	defer os.RemoveAll(home2)
	if r := runIn(t, home2, "ps"); r.code != 0 {
		t.Fatalf("ps with a new FVM_HOME: %s", r.stderr)
	}
	info, err := client.New(filepath.Join(home2, "run", store.SocketName)).Ping(context.Background(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(info.PID, syscall.SIGTERM)
	out, _ := exec.Command("ps", "-p", strconv.Itoa(info.PID), "-o", "comm=").Output()
	if !strings.HasSuffix(strings.TrimSpace(string(out)), "/fvm-app") {
		t.Errorf("the CLI started %q as the host of FVM_HOME=%s, want the installed app (%s)", strings.TrimSpace(string(out)), home2, installed)
	}
}

// sshLocal runs a shell command over `ssh localhost` (Remote Login): a session
// with no window server, like a Mac reached over the network.
func sshLocal(t *testing.T, command string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "localhost", command).CombinedOutput()
	t.Logf("$ ssh localhost %s → %v\n%s", command, err, out)
	return string(out), err
}

// TestSSHSessionNoDisplay: a VM started from an SSH session (its host and
// helper outside the login session) runs, and asking for its display answers
// why there is none, in one line, instead of killing the VM.
func TestSSHSessionNoDisplay(t *testing.T) {
	if _, err := sshLocal(t, "true"); err != nil {
		t.Skip("ssh localhost does not work here: turn on Remote Login (System Settings > General > Sharing) and authorize your key for localhost to run this")
	}
	home, _ := os.MkdirTemp("/tmp", "fvm-ssh.")
	defer os.RemoveAll(home)
	env := fmt.Sprintf("FVM_HOME=%s FVM_E2E_VZ_IMAGE=%s", home, os.Getenv("FVM_E2E_VZ_IMAGE"))
	img := os.Getenv("FVM_E2E_VZ_IMAGE")
	if img == "" {
		img = "debian"
	}
	defer func() {
		sshLocal(t, env+" "+fvmBin+" rm -f vzssh")
		if info, err := client.New(filepath.Join(home, "run", store.SocketName)).Ping(context.Background(), 2*time.Second); err == nil {
			syscall.Kill(info.PID, syscall.SIGTERM) // the host the SSH session started
		}
	}()
	out, err := sshLocal(t, env+" "+fvmBin+" run -d "+img+" vzssh --backend vz")
	if err != nil {
		t.Fatalf("run over SSH: %v", err)
	}
	if !strings.Contains(out, "fvm daemon hosts the VMs") && !strings.Contains(out, "Created VM") {
		t.Logf("(the CLI did not say why it started fvm daemon: %q)", out)
	}
	out, err = sshLocal(t, env+" "+fvmBin+" display vzssh")
	if err == nil || !strings.Contains(out, "no display without a login session") || strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Fatalf("display over SSH: %v %q; want one line saying there is no login session", err, out)
	}
	if out, _ := sshLocal(t, env+" "+fvmBin+" ps"); !strings.Contains(out, "running") {
		t.Fatalf("the VM did not survive the refused display:\n%s", out)
	}
}

// TestConsoleWindowLoads: Open Display of a QEMU VM in the app opens a window
// with a WKWebView on the host's web console (http://127.0.0.1:PORT), whose
// page loads (App Transport Security's local networking exception); the app
// logs the load. The menu is clicked through System Events (the terminal needs
// the Accessibility permission).
func TestConsoleWindowLoads(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			t.Skip("no QEMU (brew install qemu): the app's console window shows QEMU VMs")
		}
	}
	home, _ := os.MkdirTemp("/tmp", "fvm-win.")
	defer os.RemoveAll(home)
	app := startApp(t, home)
	img := os.Getenv("FVM_E2E_VZ_IMAGE")
	if img == "" {
		img = "debian"
	}
	if r := runIn(t, home, "create", img, "q1", "--backend", "qemu"); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	defer runIn(t, home, "rm", "-f", "q1")
	if r := runIn(t, home, "start", "q1", "--no-wait"); r.code != 0 {
		t.Fatalf("start: %s", r.stderr)
	}
	time.Sleep(2 * time.Second) // the menu follows the host's events
	click := fmt.Sprintf(`tell application "System Events" to tell (first process whose unix id is %d)
	click menu bar item 1 of menu bar 2
	delay 0.5
	click menu item "● q1" of menu 1 of menu bar item 1 of menu bar 2
	delay 0.5
	click menu item "Open Display" of menu 1 of menu item "● q1" of menu 1 of menu bar item 1 of menu bar 2
end tell`, app.Process.Pid)
	if out, err := exec.Command("osascript", "-e", click).CombinedOutput(); err != nil {
		t.Skipf("System Events cannot click the menu (grant the terminal Accessibility in System Settings > Privacy & Security): %v: %s", err, out)
	}
	log := filepath.Join(home, "run", store.DaemonLogName)
	for i := 0; i < 60; i++ {
		b, _ := os.ReadFile(log)
		if bytes.Contains(b, []byte("console page loaded")) && bytes.Contains(b, []byte("/vm/q1/")) {
			t.Logf("the console window loaded its page")
			return
		}
		if bytes.Contains(b, []byte("console page failed to load")) {
			t.Fatalf("the console window's page did not load:\n%s", b)
		}
		time.Sleep(500 * time.Millisecond)
	}
	b, _ := os.ReadFile(log)
	t.Fatalf("no console page load in the app's log within 30s:\n%s", b)
}

// TestVZSound: a vz VM has virtio sound (device id 25 on the guest's virtio
// bus) and a tone played in the guest plays in real time (two seconds of
// samples take about two seconds to write: the device consumes them); with
// --sound=false there is no such device. The catalog's Debian runs the cloud
// kernel, which has no sound drivers: the test installs Debian's generic
// kernel in the guest (internet) and restarts it.
func TestVZSound(t *testing.T) {
	if host == nil {
		startHost(t)
	}
	img := os.Getenv("FVM_E2E_VZ_IMAGE")
	if img == "" {
		img = "debian"
	}
	must(t, "run", "-d", img, "vzsnd", "--backend", "vz")
	defer run(t, "rm", "-f", "vzsnd")
	hasSound := "grep -lx 0x0019 /sys/bus/virtio/devices/*/device"
	if out := run(t, "ssh", "vzsnd", "--", hasSound); out.code != 0 {
		t.Fatalf("no virtio sound device in the guest: %s", out.stderr)
	}
	if run(t, "ssh", "vzsnd", "--", "sudo modprobe virtio_snd").code != 0 {
		must(t, "ssh", "vzsnd", "--", "sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-image-$(dpkg --print-architecture)")
		must(t, "restart", "vzsnd")
		must(t, "ssh", "vzsnd", "--", "sudo modprobe virtio_snd")
	}
	if cards := must(t, "ssh", "vzsnd", "--", "cat /proc/asound/cards"); !strings.Contains(strings.ToLower(cards), "virtio") {
		t.Fatalf("the guest lists no virtio sound card:\n%s", cards)
	}
	t0 := time.Now()
	must(t, "ssh", "vzsnd", "--", `sudo modprobe snd-pcm-oss && sudo sh -c 'perl -e "for \$i (0..15999) { print chr(128 + int(100*sin(2*3.14159265*440*\$i/8000))) }" > /dev/dsp'`)
	took := time.Since(t0)
	t.Logf("a 2 s tone played in %s (listen: it is the Mac's output)", took)
	if took < 1500*time.Millisecond {
		t.Errorf("2 s of sound were written in %s: the device did not play them", took)
	}
	must(t, "create", img, "vzquiet", "--backend", "vz", "--sound=false")
	defer run(t, "rm", "-f", "vzquiet")
	must(t, "start", "vzquiet")
	if out := run(t, "ssh", "vzquiet", "--", hasSound); out.code == 0 {
		t.Error("--sound=false: the guest has a virtio sound device")
	}
}
