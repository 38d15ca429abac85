//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/fvmhq/fvm/core/api"
)

// httpGet returns the body at url, "" when nothing answers.
func httpGet(url string) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// execChecks run against a running VM: commands go through the host, which
// holds one pinned SSH connection per VM (issue: exec at the speed of docker exec).
func execChecks(t *testing.T, name string) {
	t.Run("exit-status-and-streams", func(t *testing.T) {
		r := fvm(t, "exec", name, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
		if r.code != 7 || r.stdout != "out\n" || strings.TrimSpace(r.stderr) != "err" {
			t.Fatalf("got %+v, want exit 7, stdout out, stderr err", r)
		}
		if r := fvm(t, "exec", name, "--", "kill -KILL $$"); r.code != 137 {
			t.Errorf("a command killed by SIGKILL: exit %d, want 137", r.code)
		}
	})
	t.Run("stdin-10MB-roundtrip", func(t *testing.T) {
		data := make([]byte, 10<<20)
		rand.Read(data)
		cmd := exec.Command(fvmBin, "exec", name, "--", "cat")
		cmd.Stdin = bytes.NewReader(data)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("exec cat: %v: %s", err, errOut.String())
		}
		if sha256.Sum256(out.Bytes()) != sha256.Sum256(data) {
			t.Fatalf("10 MB through stdin came back as %d different bytes", out.Len())
		}
		t.Logf("MEASURE 10 MiB stdin → cat → stdout through the host: %s", time.Since(t0))
	})
	t.Run("ctrl-c-reaches-remote", func(t *testing.T) {
		cmd := exec.Command(fvmBin, "exec", name, "--", "sh", "-c", `trap "echo got-int; exit 3" INT; echo started; while :; do sleep 0.2; done`)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if line != "started\n" {
			t.Fatalf("remote said %q", line)
		}
		cmd.Process.Signal(os.Interrupt)
		rest, _ := io.ReadAll(stdout)
		err := cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(string(rest), "got-int") {
			t.Fatalf("after Ctrl-C: exit %d (%v), output %q; want the remote trap's exit 3", code, err, rest)
		}
	})
	t.Run("pty-resize", func(t *testing.T) {
		cmd := exec.Command(fvmBin, "ssh", name)
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var mu sync.Mutex
		var screen bytes.Buffer
		go func() {
			b := make([]byte, 4096)
			for {
				n, err := f.Read(b)
				mu.Lock()
				screen.Write(b[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		waitFor := func(want string) {
			t.Helper()
			for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				mu.Lock()
				ok := strings.Contains(screen.String(), want)
				mu.Unlock()
				if ok {
					return
				}
			}
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("terminal never showed %q:\n%s", want, screen.String())
		}
		fmt.Fprint(f, "echo size=$(stty size)\r")
		waitFor("size=24 80")
		pty.Setsize(f, &pty.Winsize{Rows: 40, Cols: 132})
		time.Sleep(500 * time.Millisecond) // SIGWINCH → resize frame → window-change
		fmt.Fprint(f, "echo size=$(stty size)\r")
		waitFor("size=40 132")
		fmt.Fprint(f, "exit 5\r")
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 5 {
			t.Fatalf("interactive shell exit %d, want 5", code)
		}
	})
	t.Run("20-in-parallel", func(t *testing.T) {
		var wg sync.WaitGroup
		outs := make([]string, 20)
		codes := make([]int, 20)
		for i := range outs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := exec.Command(fvmBin, "exec", name, "--", "sh", "-c", fmt.Sprintf("sleep 1; echo %d", i))
				b, _ := c.Output()
				outs[i], codes[i] = strings.TrimSpace(string(b)), c.ProcessState.ExitCode()
			}()
		}
		wg.Wait()
		for i := range outs {
			if codes[i] != 0 || outs[i] != fmt.Sprint(i) {
				t.Errorf("exec %d: exit %d, output %q", i, codes[i], outs[i])
			}
		}
	})
	t.Run("latency", func(t *testing.T) {
		var times []time.Duration
		for i := 0; i < 10; i++ {
			t0 := time.Now()
			mustFVM(t, "exec", name, "--", "true")
			times = append(times, time.Since(t0))
		}
		sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
		t.Logf("MEASURE fvm exec NAME -- true: median %s of 10 (min %s, max %s)", times[5], times[0], times[9])
	})
	t.Run("cp-roundtrip", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "tree")
		os.MkdirAll(filepath.Join(src, "sub", "deep"), 0o755)
		big := make([]byte, 12<<20)
		rand.Read(big)
		os.WriteFile(filepath.Join(src, "sub", "big.bin"), big, 0o600)
		os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755)
		os.WriteFile(filepath.Join(src, "sub", "deep", "note"), []byte("deep\n"), 0o640)
		os.Symlink("../run.sh", filepath.Join(src, "sub", "link"))
		t0 := time.Now()
		mustFVM(t, "cp", src, name+":/tmp/")
		t.Logf("MEASURE fvm cp of a 12 MiB tree into the VM: %s", time.Since(t0))
		if out := strings.TrimSpace(mustFVM(t, "exec", name, "--", "/tmp/tree/run.sh; stat -c %a /tmp/tree/sub/deep/note; readlink /tmp/tree/sub/link")); out != "ran\n640\n../run.sh" {
			t.Fatalf("in the VM: %q", out)
		}
		back := t.TempDir()
		mustFVM(t, "cp", name+":/tmp/tree", back)
		for _, f := range []string{"sub/big.bin", "run.sh", "sub/deep/note"} {
			a, _ := os.ReadFile(filepath.Join(src, f))
			b, err := os.ReadFile(filepath.Join(back, "tree", f))
			if err != nil || sha256.Sum256(a) != sha256.Sum256(b) {
				t.Errorf("%s did not come back byte-identical: %v", f, err)
			}
			sa, _ := os.Stat(filepath.Join(src, f))
			sb, _ := os.Stat(filepath.Join(back, "tree", f))
			if sb == nil || sa.Mode() != sb.Mode() {
				t.Errorf("%s: mode %v, want %v", f, sb, sa.Mode())
			}
		}
		if l, _ := os.Readlink(filepath.Join(back, "tree", "sub", "link")); l != "../run.sh" {
			t.Errorf("link came back as %q", l)
		}
	})
	t.Run("auto-ports", func(t *testing.T) {
		for _, tc := range []struct {
			port uint16
			bind string
			via  string
		}{{8123, "", "hostfwd"}, {8124, "--bind 127.0.0.1", "ssh"}} {
			// The clock starts once the guest listens (python's start takes
			// seconds under TCG, more on a loaded CI machine): it times fvm's
			// part, the guest's watcher (twice a second) and the forward.
			mustFVM(t, "exec", name, "--", fmt.Sprintf("mkdir -p /tmp/www%d && echo served-%d > /tmp/www%d/index.html && setsid -f python3 -m http.server %d %s -d /tmp/www%d < /dev/null > /dev/null 2>&1; "+
				"for i in $(seq 300); do ss -Hltn 'sport = :%d' | grep -q . && exit 0; sleep 0.1; done; echo never listened >&2; exit 1", tc.port, tc.port, tc.port, tc.port, tc.bind, tc.port, tc.port))
			t0 := time.Now()
			var host uint16
			var body string
			for time.Since(t0) < 20*time.Second && body == "" {
				var ps []api.Port
				out, _ := exec.Command(fvmBin, "ports", name, "--format", "json").Output() // polled: not logged
				json.Unmarshal(out, &ps)
				for _, p := range ps {
					if p.GuestPort == tc.port && p.Auto && p.Via == tc.via {
						host = p.HostPort
					}
				}
				if host != 0 {
					body = httpGet(fmt.Sprintf("http://127.0.0.1:%d/", host))
				}
				if body == "" {
					time.Sleep(100 * time.Millisecond)
				}
			}
			took := time.Since(t0)
			if !strings.Contains(body, fmt.Sprintf("served-%d", tc.port)) {
				t.Fatalf("guest port %d (%s) not reachable on the host after %s (host port %d): %q", tc.port, tc.via, took, host, body)
			}
			t.Logf("MEASURE guest listener on %d (%s) reachable at 127.0.0.1:%d after %s", tc.port, tc.via, host, took)
			if took > 5*time.Second {
				t.Errorf("took %s to appear after the guest listened, want about 1 s", took)
			}
			mustFVM(t, "exec", name, "--", fmt.Sprintf("pkill -f 'http.server %d'", tc.port))
			gone := false
			for t1 := time.Now(); time.Since(t1) < 10*time.Second && !gone; time.Sleep(200 * time.Millisecond) {
				gone = httpGet(fmt.Sprintf("http://127.0.0.1:%d/", host)) == ""
			}
			if !gone {
				t.Errorf("127.0.0.1:%d still answers after the guest stopped listening", host)
			}
		}
	})
	t.Run("sshd-restart-reconnects", func(t *testing.T) {
		// Restart sshd and cut every connection of our user, the host's included.
		before := heldReconnects(name)
		mustFVM(t, "exec", name, "--", "sudo", "setsid", "-f", "sh", "-c", `sleep 1; systemctl restart ssh; `+cutSessions)
		// The host reconnects by itself once the cut comes (systemctl takes seconds under TCG).
		t0 := time.Now()
		for heldReconnects(name) <= before {
			if time.Since(t0) > time.Minute {
				t.Fatal("the host's connection was not cut, or the host did not log its reconnect")
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("MEASURE held connection back %s after the sshd restart was asked for", time.Since(t0).Round(100*time.Millisecond))
		if got := strings.TrimSpace(mustFVM(t, "exec", name, "--", "echo", "again")); got != "again" {
			t.Fatalf("after sshd restart: %q", got)
		}
	})
}

// cutSessions (guest shell) kills the SSH sessions of the VM's user: OpenSSH
// before 9.8 (Debian 12) titles them "sshd: fvm…", later (Debian 13) "sshd-session: fvm…".
const cutSessions = `pkill -f "^sshd(-session)?: fvm"`

// heldReconnects counts the host's log lines for name's held SSH connection
// coming back after it was cut.
func heldReconnects(name string) int {
	log, _ := os.ReadFile(filepath.Join(layout.RunDir, "daemon.log"))
	n := 0
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, `msg="ssh connection held"`) && strings.Contains(l, " vm="+name+" ") && strings.Contains(l, "reconnected=true") {
			n++
		}
	}
	return n
}

// hostKeyRefused replaces the guest's SSH host key and cuts the held
// connection: the host must refuse the new key loudly, never use it. The VM
// is unusable over SSH afterwards: run it last.
func hostKeyRefused(t *testing.T, name string) {
	mustFVM(t, "exec", name, "--", "sudo", "setsid", "-f", "sh", "-c",
		`sleep 1; rm -f /etc/ssh/ssh_host_ed25519_key*; ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key; systemctl restart ssh; `+cutSessions)
	var r result
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if r = fvm(t, "exec", name, "--", "echo", "should-not-run"); r.code != 0 {
			break
		}
	}
	if r.code == 0 || strings.Contains(r.stdout, "should-not-run") || !strings.Contains(r.stderr, "host key") {
		t.Fatalf("a changed host key was not refused: %+v", r)
	}
	if out := mustFVM(t, "status", name); !strings.Contains(out, "host key") {
		t.Errorf("status does not say why SSH is refused:\n%s", out)
	}
	log, _ := os.ReadFile(filepath.Join(layout.RunDir, "daemon.log"))
	if !strings.Contains(string(log), "ssh host key changed") {
		t.Errorf("the host log does not record the refused key")
	}
}
