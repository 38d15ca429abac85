//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/store"
)

// TestSharesHostUID: a host user whose uid is not 1000 (a Mac's first user is
// 501) shares a directory only it can write (0755); the guest's user, which
// fvm gives the host user's uid, writes into it, and the host sees the file
// owned by the host user. Here the tests run as root, whose uid no guest user
// can have: the test makes a user with uid fvmUID and runs fvm, its host and
// the VM as that user, from a state dir of its own (the Debian image imported
// from the suite's).
func TestSharesHostUID(t *testing.T) {
	t.Parallel()
	ensureImage(t)
	u := hostUser(t)
	t.Cleanup(func() { u.dumpLogs(t) })
	const name = "uid1"
	share := filepath.Join(u.home, "src")
	u.mkdir(t, share, 0o755)
	os.WriteFile(filepath.Join(share, "from-host"), []byte("mine\n"), 0o644)
	os.Chown(filepath.Join(share, "from-host"), u.uid, u.uid)
	if u.fvmHome != layout.ConfigDir { // a state dir of its own: the suite's image, imported
		base := u.copyBase(t)
		u.must(t, "image", "import", base, "--name", "debian-local")
	}
	defer u.stopHost(t)
	t0 := time.Now()
	if r := u.run(t, "run", "-d", "debian-local", name, "--memory", "1G", "-v", share+":/mnt/src"); r.code != 0 {
		t.Fatalf("run -d as uid %d: %s %s", u.uid, strings.TrimSpace(r.stderr), serialEnd(serialLogOf(store.HomeLayout(u.fvmHome), name)))
	}
	t.Logf("MEASURE run -d with a share, as uid %d: %s", u.uid, time.Since(t0))
	defer u.run(t, "rm", "-f", name)
	if id := strings.TrimSpace(u.must(t, "exec", name, "--", "id -u")); id != strconv.Itoa(u.uid) {
		t.Fatalf("the guest's user is uid %s, want the host user's %d", id, u.uid)
	}
	u.must(t, "wait", name) // the share is mounted at boot
	if r := u.run(t, "exec", name, "--", "stat -c %u /mnt/src; cat /mnt/src/from-host; echo hello > /mnt/src/from-guest && mkdir /mnt/src/dir-from-guest"); strings.TrimSpace(r.stdout) != fmt.Sprintf("%d\nmine", u.uid) {
		// Once under parallel load the share was not mounted: what fvm-init said of its mount.
		diag := u.run(t, "exec", name, "--", "sudo journalctl -b -u fvm-init -o cat --no-pager | tail -20; findmnt /mnt/src; lsmod | grep -e 9p -e virtiofs")
		t.Fatalf("in the guest: %q %q; fvm-init's journal, mounts and modules:\n%s", r.stdout, r.stderr, diag.stdout)
	}
	for _, f := range []string{"from-guest", "dir-from-guest"} {
		st, err := os.Stat(filepath.Join(share, f))
		if err != nil {
			t.Fatalf("the guest's %s is not on the host: %v", f, err)
		}
		if owner := int(st.Sys().(*syscall.Stat_t).Uid); owner != u.uid {
			t.Errorf("%s is owned by uid %d on the host, want the host user's %d", f, owner, u.uid)
		}
	}
	if fs := strings.TrimSpace(u.must(t, "exec", name, "--", "findmnt -no FSTYPE /mnt/src")); fs != "9p" {
		t.Logf("share served by %s", fs)
	}
}

// firstUID is where the test host user's uid is looked for: not 1000 (the
// guest's default) and not a Mac's 501, to show it is the host's, whatever it is.
const firstUID = 1987

// testUser runs fvm as an unprivileged user with a state dir of its own.
type testUser struct {
	name    string
	uid     int
	home    string // HOME and FVM_HOME's parent, short (socket paths)
	fvmHome string
	fvm     string // a copy of the fvm binary the user can run
}

// hostUser makes the test's host user (as root) or, when the tests do not run
// as root, is the current user (skipping when that is uid 1000, whose guest
// user would have its uid anyway).
func hostUser(t *testing.T) *testUser {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getuid() == 1000 {
			t.Skip("the host user is uid 1000, the guest's default: nothing to show (run as root, or as another user)")
		}
		me, _ := user.Current()
		return &testUser{name: me.Username, uid: os.Getuid(), home: layout.ConfigDir, fvmHome: layout.ConfigDir, fvm: fvmBin}
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("no useradd to make a host user other than root")
	}
	home := layout.ConfigDir + "-uid" // beside the suite's state dir: short, as socket paths need
	os.RemoveAll(home)
	uid := firstUID
	for ; ; uid++ { // a uid and a user name nobody has (other suites may run beside this one)
		if _, err := user.LookupId(strconv.Itoa(uid)); err != nil {
			break
		}
	}
	name := fmt.Sprintf("fvmuid%d", uid)
	if out, err := exec.Command("useradd", "-u", strconv.Itoa(uid), "-U", "-M", "-d", home, "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	u := &testUser{name: name, uid: uid, home: home, fvmHome: filepath.Join(home, "h")}
	t.Cleanup(func() {
		exec.Command("userdel", name).Run()
		os.RemoveAll(home)
	})
	u.mkdir(t, home, 0o755)
	u.mkdir(t, u.fvmHome, 0o700)
	u.fvm = filepath.Join(home, "fvm")
	copyFile(t, fvmBin, u.fvm, 0o755)
	return u
}

func (u *testUser) mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, mode)
	os.Chown(dir, u.uid, u.uid)
}

// copyBase copies the suite's Debian image where the user can read it.
func (u *testUser) copyBase(t *testing.T) string {
	t.Helper()
	var imgs []api.Image
	if err := json.Unmarshal([]byte(mustFVM(t, "images", "--format", "json")), &imgs); err != nil {
		t.Fatal(err)
	}
	src := ""
	for _, img := range imgs {
		if img.Name == "debian-local" {
			src = img.Path
		}
	}
	if src == "" {
		t.Fatal("no debian-local in `fvm images --format json`")
	}
	dst := filepath.Join(u.home, "debian-local.qcow2")
	copyFile(t, src, dst, 0o644)
	os.Chown(dst, u.uid, u.uid)
	return dst
}

func (u *testUser) run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.fvm, args...)
	cmd.Dir = u.home
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + u.home, "FVM_HOME=" + u.fvmHome, "USER=" + u.name, "FVM_QEMU_AUDIODEV=none"}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.uid)}}
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fvm %v as %s: %v", args, u.name, err)
	}
	t.Logf("$ [%s] fvm %s → %d\n%s%s", u.name, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func (u *testUser) must(t *testing.T, args ...string) string {
	t.Helper()
	r := u.run(t, args...)
	if r.code != 0 {
		t.Fatalf("fvm %v as %s failed (%d): %s", args, u.name, r.code, r.stderr)
	}
	return r.stdout
}

// stopHost ends the user's own fvm host (the suite's cleanup knows only its own).
func (u *testUser) stopHost(t *testing.T) {
	if u.fvmHome == layout.ConfigDir {
		return
	}
	defer func() {
		// Its VMs outlive their host (a failed test leaves one running), and
		// userdel refuses a user with processes: whatever runs as the made
		// user ends here.
		if os.Geteuid() == 0 {
			exec.Command("pkill", "-KILL", "-u", strconv.Itoa(u.uid)).Run()
		}
	}()
	info, err := client.New(filepath.Join(u.fvmHome, "run", "fvm.sock")).Ping(context.Background(), 2*time.Second)
	if err != nil || info.PID <= 0 {
		return
	}
	syscall.Kill(info.PID, syscall.SIGTERM)
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if syscall.Kill(info.PID, 0) != nil {
			return
		}
	}
	t.Logf("the host of %s (pid %d) still runs a minute after SIGTERM: killed", u.name, info.PID)
}

// dumpLogs logs, when the test failed, the user's host log and each of its
// VMs' serial logs: what CI shows of a boot that went wrong.
func (u *testUser) dumpLogs(t *testing.T) {
	if !t.Failed() || u.fvmHome == layout.ConfigDir {
		return
	}
	t.Logf("%s's host log:\n%s", u.name, tailFile(filepath.Join(u.fvmHome, "run", store.DaemonLogName)))
	logs, _ := filepath.Glob(serialLogOf(store.HomeLayout(u.fvmHome), "*"))
	for _, l := range logs {
		t.Logf("%s:\n%s", l, tailFile(l))
	}
}
