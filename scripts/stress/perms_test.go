//go:build stress

package stress

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/store"
)

// The permissions check runs fvm as an unprivileged user (root reads
// everything, so a test as root proves nothing) and probes its state as
// another unprivileged user.
const (
	ownerUser = "fvmtest"
	otherUser = "fvmother"
)

// ensureUser creates a system user without a home if it does not exist.
func ensureUser(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
			t.Skipf("useradd %s: %v %s", name, err, out)
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// asUser is a command run as name (setpriv: no setuid helper, no PAM),
// killed when ctx ends.
func asUser(ctx context.Context, name string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=" + name, "--regid=" + name, "--init-groups", "--"}, args...)...)
	cmd.Env = env
	return cmd
}

// permissions runs the CLI and its host as fvmtest over a state directory an
// older fvm left world-readable, imports an image, pulls one, creates VMs and
// boots one (sockets, logs, pid files), then checks, as fvmother, that no VM
// file, base, key, log or socket can be read or connected to, and as root
// that nothing in the state has group or other permissions left.
func permissions(t *testing.T, img []byte, mirrorURL string, n *tally) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run fvm as other users")
	}
	uid, gid := ensureUser(t, ownerUser)
	ensureUser(t, otherUser)
	root, _ := os.MkdirTemp("", "fvmp.")
	defer os.RemoveAll(root)
	os.Chmod(root, 0o755)
	bin := filepath.Join(root, "fvm")
	if b, err := os.ReadFile(fvmBin); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatalf("copy fvm: %v", err)
	}
	src := filepath.Join(root, "src.img")
	os.WriteFile(src, img, 0o644)
	home := filepath.Join(root, "home")
	// What an older fvm left: a world-readable cache with a 0444 base.
	for _, d := range []string{home, filepath.Join(home, "cache"), filepath.Join(home, "cache", "bases"), filepath.Join(home, "data")} {
		os.MkdirAll(d, 0o755)
		os.Chmod(d, 0o755)
	}
	old := filepath.Join(home, "cache", "bases", "sha256-0000.raw")
	os.WriteFile(old, []byte("an old base"), 0o444)
	filepath.WalkDir(home, func(p string, _ fs.DirEntry, _ error) error { return os.Lchown(p, uid, gid) })

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root, "FVM_HOME=" + home,
		"FVM_IMAGES_DEBIAN_MIRROR=" + mirrorURL, "FVM_IMAGES_DEBIAN_INDEX=" + mirrorURL}
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := asUser(ctx, ownerUser, env, append([]string{bin}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("fvm %s as %s: %v\n%s", strings.Join(args, " "), ownerUser, err, out.String())
		}
		return out.String()
	}
	layout := store.HomeLayout(home)
	defer func() { // the host runs as fvmtest, started on demand: stop it
		if info, err := client.New(layout.SocketPath()).Ping(context.Background(), time.Second); err == nil {
			syscall.Kill(info.PID, syscall.SIGTERM)
			time.Sleep(2 * time.Second)
			syscall.Kill(info.PID, syscall.SIGKILL)
		}
	}()
	run("image", "import", src, "--name", "base")
	run("pull", "debian:12")
	run("create", "base", "idle")
	run("create", "base", "booted", "--memory", "256M")
	run("start", "--no-wait", "booted")
	defer run("rm", "-f", "booted")
	if info, err := client.New(layout.SocketPath()).Ping(context.Background(), time.Second); err != nil {
		t.Fatalf("no host: %v", err)
	} else if st, err := os.Stat(fmt.Sprintf("/proc/%d", info.PID)); err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Fatalf("the host does not run as %s", ownerUser)
	}

	// As fvmother: every file, directory and socket under the state, probed
	// by this test binary re-run as that user (TestMain, probeAll).
	var paths []string
	loose, sockets := 0, 0
	filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		paths = append(paths, p)
		if d.Type()&fs.ModeSocket != 0 {
			sockets++
		}
		if st, err := os.Lstat(p); err == nil && st.Mode()&fs.ModeSymlink == 0 && st.Mode().Perm()&0o077 != 0 {
			loose++
			t.Errorf("%s is %v: group or others have permissions", p, st.Mode().Perm())
		}
		if d.IsDir() && strings.HasPrefix(p, layout.BuildDir()+"/") {
			return fs.SkipDir
		}
		return nil
	})
	self, _ := os.Executable()
	prober := filepath.Join(root, "probe")
	if b, err := os.ReadFile(self); err != nil || os.WriteFile(prober, b, 0o755) != nil {
		t.Fatalf("copy the test binary: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := asUser(ctx, otherUser, []string{"FVM_STRESS_PROBE=1"}, append([]string{prober}, paths...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PROBED") {
		t.Fatalf("probe as %s: %v %s", otherUser, err, out)
	}
	readable := 0
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "READ ") || strings.HasPrefix(l, "CONNECTED ") {
			readable++
			t.Errorf("%s can %s", otherUser, l)
		}
	}
	// The probe works: as the owner it reads the same paths.
	own := asUser(ctx, ownerUser, []string{"FVM_STRESS_PROBE=1"}, prober, layout.SocketPath(), filepath.Join(layout.InstanceDir("idle"), store.SpecFile))
	if o, _ := own.CombinedOutput(); !strings.Contains(string(o), "CONNECTED "+layout.SocketPath()) || !strings.Contains(string(o), "READ file") {
		t.Fatalf("the probe, as %s, cannot read its own state: %s", ownerUser, o)
	}
	if st, err := os.Stat(old); err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("the old world-readable base is %v after the host started, want 0400", st.Mode().Perm())
	}
	n.exposed += readable + loose
	n.states += len(paths)
	n.cases++
	t.Logf("STRESS permissions: fvm and its host ran as %s (import, pull, create, boot); %s probed %d paths and %d sockets: %d readable or connectable, %d with group/other permissions (both must be 0)",
		ownerUser, otherUser, len(paths), sockets, readable, loose)
}

// TestMain runs the probe when the test binary is started as another user
// (FVM_STRESS_PROBE=1): it prints what of the paths given it could read,
// list or connect to.
func TestMain(m *testing.M) {
	if os.Getenv("FVM_STRESS_PROBE") == "1" {
		probeAll(os.Args[1:])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// probeAll tries every path: a directory's listing, a file's first byte
// (without blocking on a FIFO), a socket's connection. One line per success.
func probeAll(paths []string) {
	for _, p := range paths {
		if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
			c.Close()
			fmt.Println("CONNECTED", p)
			continue
		}
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if _, err := f.ReadDir(1); err == nil {
			fmt.Println("READ list", p)
		} else if _, err := f.Read(make([]byte, 1)); err == nil || err == io.EOF {
			fmt.Println("READ file", p)
		}
		f.Close()
	}
	fmt.Printf("PROBED %d paths\n", len(paths))
}
