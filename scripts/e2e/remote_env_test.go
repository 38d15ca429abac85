//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/scripts/internal/sshdtest"
)

// The remote-host tests run two unprivileged accounts on this machine:
// fvmremote, whose own fvm host (its FVM_HOME, fvm on its PATH for SSH
// sessions) runs the VMs, behind a real OpenSSH server the test starts on
// 127.0.0.1; and fvmclient, whose ~/.ssh (OpenSSH reads the account's home,
// not $HOME) holds the key and known_hosts the client uses. Neither can read
// the other's files. Everything but the two accounts goes at the end.

const (
	remoteUser = "fvmremote"
	clientUser = "fvmclient"
)

type remoteEnv struct {
	dir        string // the test's work dir, short (socket paths)
	bin        string // the client's fvm
	serverBin  string // the server's fvm, on the PATH of its SSH sessions
	serverHome string // fvmremote's FVM_HOME
	clientHome string // fvmclient's FVM_HOME
	clientSSH  string // fvmclient's ~/.ssh
	client     *user.User
	server     *user.User
	sshd       *sshdtest.Server
	host       string // ssh://fvmremote@127.0.0.1:PORT
	listeners  map[string][]string
}

func newRemoteEnv(t *testing.T) *remoteEnv {
	t.Helper()
	if err := sshdtest.Available(); err != nil {
		t.Fatalf("remote-host tests need a real sshd: %v", err)
	}
	e := &remoteEnv{listeners: nonLoopbackListeners(t)}
	var err error
	if e.server, err = sshdtest.EnsureUser(remoteUser); err != nil {
		t.Fatal(err)
	}
	if e.client, err = sshdtest.EnsureUser(clientUser); err != nil {
		t.Fatal(err)
	}
	if e.dir, err = os.MkdirTemp("", "e2e-r"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(e.dir) })
	os.Chmod(e.dir, 0o755)
	e.bin = filepath.Join(e.dir, "cbin", "fvm")
	copyFile(t, fvmBin, e.bin, 0o755)
	os.Chmod(filepath.Dir(e.bin), 0o755)
	e.serverBin = filepath.Join(e.dir, "bin", "fvm")
	copyFile(t, fvmBin, e.serverBin, 0o755)
	os.Chmod(filepath.Dir(e.serverBin), 0o755)

	e.serverHome = filepath.Join(e.dir, "rh")
	os.MkdirAll(e.serverHome, 0o700)
	// Warm snapshots would cost a second boot in the background.
	os.WriteFile(filepath.Join(e.serverHome, "config.yaml"), []byte("images:\n  warm: false\n"), 0o600)
	if err := sshdtest.Chown(e.server, e.serverHome); err != nil {
		t.Fatal(err)
	}
	e.clientHome = filepath.Join(e.dir, "ch")
	os.MkdirAll(e.clientHome, 0o700)
	if err := sshdtest.Chown(e.client, e.clientHome); err != nil {
		t.Fatal(err)
	}

	e.clientSSH = filepath.Join(e.client.HomeDir, ".ssh")
	os.Remove(e.clientSSH) // an empty one a killed run left
	if _, err := os.Stat(e.clientSSH); err == nil {
		t.Fatalf("%s exists: the test writes its own key there and removes it; move it away", e.clientSSH)
	}
	pub, err := sshdtest.ClientHome(e.client.HomeDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(e.clientSSH) })
	e.sshd, err = sshdtest.Start(sshdtest.Options{
		Dir: filepath.Join(e.dir, "sshd"), Users: []string{remoteUser}, AuthorizedKey: pub,
		Env:      []string{"PATH=" + filepath.Dir(e.serverBin) + ":/usr/bin:/bin", "FVM_HOME=" + e.serverHome},
		BarePATH: "/usr/bin:/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.sshd.Stop)
	if err := e.sshd.TrustIn(e.client.HomeDir); err != nil {
		t.Fatal(err)
	}
	if err := sshdtest.Chown(e.client, e.clientSSH); err != nil {
		t.Fatal(err)
	}
	e.host = "ssh://" + remoteUser + "@127.0.0.1:" + strconv.Itoa(e.sshd.Port)
	t.Cleanup(func() { e.stopServerHost(t) })
	t.Cleanup(e.removeServerVMs)
	t.Cleanup(func() { e.endSharedConnections(t) })
	return e
}

// cmd is a command run as the client account, with its HOME and FVM_HOME.
func (e *remoteEnv) cmd(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, args...)
	uid, _ := strconv.Atoi(e.client.Uid)
	gid, _ := strconv.Atoi(e.client.Gid)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	c.Env = append([]string{"HOME=" + e.client.HomeDir, "USER=" + clientUser, "FVM_HOME=" + e.clientHome, "PATH=/usr/bin:/bin", "LANG=C.UTF-8"}, env...)
	c.Dir = e.client.HomeDir
	return c
}

// fvm runs the client's fvm (bin, else the test's copy).
func (e *remoteEnv) fvmWith(t *testing.T, bin string, stdin io.Reader, args ...string) result {
	t.Helper()
	if bin == "" {
		bin = e.bin
	}
	noteGuestCrashes(t, store.HomeLayout(e.serverHome), vmNames(args)...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c := e.cmd(ctx, nil, bin, args...)
	var so, se bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = stdin, &so, &se
	err := c.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fvm %v: %v", args, err)
	}
	t.Logf("$ [client] fvm %s → %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func (e *remoteEnv) fvm(t *testing.T, args ...string) result {
	t.Helper()
	return e.fvmWith(t, "", nil, args...)
}

func (e *remoteEnv) mustFVM(t *testing.T, args ...string) string {
	t.Helper()
	r := e.fvm(t, args...)
	if r.code != 0 {
		t.Fatalf("fvm %v failed (%d): %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// refused checks a command fails with one line that says want.
func (e *remoteEnv) refused(t *testing.T, r result, want string) {
	t.Helper()
	msg := strings.TrimSpace(r.stderr)
	if r.code == 0 || strings.Count(msg, "\n") > 0 || !strings.HasPrefix(msg, "fvm: ") || !strings.Contains(msg, want) {
		t.Errorf("want one line with %q and a non-zero exit, got %d %q", want, r.code, msg)
	}
}

func (e *remoteEnv) serverSocket() string { return filepath.Join(e.serverHome, "run", "fvm.sock") }

// serverHostPID is the pid of fvmremote's host (of any revision), 0 when none answers.
func (e *remoteEnv) serverHostPID() int {
	info, err := client.New(e.serverSocket()).Ping(context.Background(), 2*time.Second)
	var ve *client.VersionError
	if errors.As(err, &ve) {
		return ve.HostPID
	}
	if err != nil {
		return 0
	}
	return info.PID
}

// removeServerVMs removes whatever VMs fvmremote's host still has (a test
// that failed half-way), so no QEMU outlives the test.
func (e *remoteEnv) removeServerVMs() {
	c := client.New(e.serverSocket())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vms, err := c.List(ctx)
	if err != nil {
		return
	}
	for _, v := range vms {
		c.Remove(ctx, v.Spec.Name, true)
	}
}

// stopServerHost ends fvmremote's host (VMs it runs stay; the test removes them first).
func (e *remoteEnv) stopServerHost(t *testing.T) {
	pid := e.serverHostPID()
	if pid == 0 {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	os.MkdirAll(filepath.Dir(dst), 0o755)
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dst, mode)
}

// nonLoopbackListeners are the TCP listeners `ss -ltn` shows on addresses
// other than loopback, each with the uids of the processes that hold it.
func nonLoopbackListeners(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("ss", "-Hltnp").Output()
	if err != nil {
		t.Fatalf("ss -ltnp: %v", err)
	}
	got := map[string][]string{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		addr := f[3]
		if strings.HasPrefix(addr, "127.") || strings.HasPrefix(addr, "[::1]") || strings.HasPrefix(addr, "[::ffff:127.") {
			continue
		}
		got[addr] = nil
		for _, m := range pidField.FindAllStringSubmatch(l, -1) {
			got[addr] = append(got[addr], processUID(m[1]))
		}
	}
	return got
}

var pidField = regexp.MustCompile(`pid=(\d+)`)

// processUID is the real uid of a process, "" once it is gone.
func processUID(pid string) string {
	b, _ := os.ReadFile(filepath.Join("/proc", pid, "status"))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	return ""
}

// newListeners are the non-loopback listeners that were not there at the
// start and that the client's or the server's processes hold: what else
// runs on the machine (a CI runner's own services) is not the test's.
func (e *remoteEnv) newListeners(t *testing.T) []string {
	var extra []string
	for a, uids := range nonLoopbackListeners(t) {
		if _, before := e.listeners[a]; before {
			continue
		}
		for _, uid := range uids {
			if uid == e.client.Uid || uid == e.server.Uid {
				extra = append(extra, a)
				break
			}
		}
	}
	return extra
}

// childSSH is the pid of an ssh process whose parent is pid (the CLI's
// connection to the server), 0 if none.
func childSSH(pid int) int {
	ents, _ := os.ReadDir("/proc")
	for _, en := range ents {
		p, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(ssh") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return p
		}
	}
	return 0
}

// sharedConnection is the pid of the client's ssh master for e.host, as
// the master itself tells it (its command line is rewritten to "ssh: PATH
// [mux]"), 0 when there is none.
func (e *remoteEnv) sharedConnection() int {
	out, _ := e.cmd(context.Background(), nil, "ssh", "-o", "ControlPath="+filepath.Join(e.clientHome, "run", "fvm-%C"),
		"-p", strconv.Itoa(e.sshd.Port), "-l", remoteUser, "-O", "check", "127.0.0.1").CombinedOutput()
	m := regexp.MustCompile(`pid=(\d+)`).FindSubmatch(out)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(m[1]))
	return pid
}

// endSharedConnections ends the client's ssh processes that outlive commands:
// the shared connections (ControlMaster) of each server and port it reached,
// which name the client's run dir on their command line.
func (e *remoteEnv) endSharedConnections(t *testing.T) {
	ents, _ := os.ReadDir("/proc")
	for _, en := range ents {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		st, err := os.Stat(filepath.Join("/proc", en.Name()))
		if err != nil || strconv.Itoa(int(st.Sys().(*syscall.Stat_t).Uid)) != e.client.Uid {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if strings.Contains(string(cmdline), e.clientHome) {
			t.Logf("ending the client's %q (pid %d)", strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")), pid)
			syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}
