//go:build stress

// Package stress is `make stress`: fault injection against the real fvm binary
// (FVM_BIN). It kills the host (kill -9) at random moments during create,
// import, pull (from a loopback mirror) and rm, then checks that ls and images
// work and that every name is usable or removable and nothing completed was
// lost; it races 20 starts of one VM (one QEMU boot, under the heavy lock),
// kills the host during snapshots and clones of a running VM (snapshot.go),
// fills a small tmpfs FVM_HOME during pull, import and create, and corrupts
// every kind of state file. Then (hostile_test.go, sigterm_test.go,
// perms_test.go) it puts FIFOs, oversized files, symlinks and directories in
// place of every file fvm reads back and copies a VM directory under another
// name (nothing may hang, all is listed and removable); rewrites a file in
// place while it is imported (no base may name another file); sends SIGTERM
// to the host during create, import, pull, start and stop, and to `fvm image
// build` (each must stop within its grace, losing nothing); and runs fvm as an
// unprivileged user while another probes its state (nothing readable). It
// prints the figures and a closing note with the counts.
package stress

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
)

var fvmBin = os.Getenv("FVM_BIN")

type env struct {
	t    *testing.T
	home string
	l    store.Layout
	host *exec.Cmd
	vars []string
	lost int // what completed and then went missing or broken (the checks fail on it too)
}

func newEnv(t *testing.T, home string) *env {
	t.Setenv("FVM_HOME", home)
	return &env{t: t, home: home, l: store.DefaultLayout()}
}

func (e *env) fvm(args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fvmBin, args...)
	cmd.Env = append(append(os.Environ(), "FVM_HOME="+e.home), e.vars...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("fvm %v: %v", args, err)
	}
	return so.String(), se.String(), code
}

func (e *env) startHost() {
	cmd := exec.Command(fvmBin, "daemon")
	cmd.Env = append(append(os.Environ(), "FVM_HOME="+e.home), e.vars...)
	logf, _ := os.OpenFile(filepath.Join(e.home, "stress-host.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.host = cmd
	c := client.New(e.l.SocketPath())
	for i := 0; i < 600; i++ { // 15 s: the machine may be busy
		if _, err := c.Ping(context.Background(), time.Second); err == nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	cmd.Process.Kill() // leave no host behind the failure
	cmd.Wait()
	e.host = nil
	e.t.Fatal("host did not come up")
}

func (e *env) killHost() {
	if e.host != nil {
		e.host.Process.Signal(syscall.SIGKILL)
		e.host.Wait()
		e.host = nil
	}
	// A host the CLI started on demand: kill it too.
	if info, err := client.New(e.l.SocketPath()).Ping(context.Background(), time.Second); err == nil {
		syscall.Kill(info.PID, syscall.SIGKILL)
		time.Sleep(50 * time.Millisecond)
	}
	// One still starting (the lock taken, not serving yet) does not answer
	// that ping, yet would serve the next command: found by its environment.
	for _, pid := range daemonsOf(e.home) {
		syscall.Kill(pid, syscall.SIGKILL)
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if _, _, err := proc.Info(pid); err != nil {
				break // gone, or a zombie its parent (a killed CLI) has yet to reap
			}
		}
	}
}

// daemonsOf lists the `fvm daemon` processes whose FVM_HOME is home.
func daemonsOf(home string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, args, err := proc.Info(pid)
		if err != nil || len(args) < 2 || args[1] != "daemon" || filepath.Base(exe) != "fvm" {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == "FVM_HOME="+home {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// mirror serves a Debian-like layout over loopback, slowly enough that a
// kill lands in the middle of a download.
func mirror(t *testing.T, img []byte) *httptest.Server {
	sum := sha512.Sum512(img)
	const build = "20260101-0001"
	name := "debian-12-genericcloud-amd64-" + build + ".qcow2"
	sums := hex.EncodeToString(sum[:]) + "  " + name + "\n"
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bookworm/":
			fmt.Fprintf(w, `<a href="%s/">%s/</a>`, build, build)
		case "/bookworm/" + build + "/SHA512SUMS":
			w.Write([]byte(sums))
		case "/bookworm/" + build + "/" + name:
			http.ServeContent(&slowWriter{w}, r, name, time.Time{}, bytes.NewReader(img))
		default:
			http.NotFound(w, r)
		}
	}))
}

type slowWriter struct{ http.ResponseWriter }

func (s *slowWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		c := min(len(b), 256<<10)
		m, err := s.ResponseWriter.Write(b[:c])
		n += m
		if err != nil {
			return n, err
		}
		b = b[c:]
		time.Sleep(10 * time.Millisecond)
	}
	return n, nil
}

func rawDisk(size int) []byte {
	b := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(b[:1<<20])
	b[510], b[511] = 0x55, 0xAA
	return b
}

// check is the invariant after every kill: ls and images work; every VM and
// image is usable (inspect / create from it) or broken and removable; what
// completed before is there, whole.
func (e *env) check(done map[string]string) (states int) {
	so, se, code := e.fvm("ls", "--format", "json")
	if code != 0 {
		e.t.Fatalf("ls failed after a kill: %s", se)
	}
	var vms []api.VM
	json.Unmarshal([]byte(so), &vms)
	seen := map[string]bool{}
	for _, v := range vms {
		states++
		seen["vm:"+v.Spec.Name] = true
		if v.Broken != "" {
			if _, se, code := e.fvm("rm", "-f", v.Spec.Name); code != 0 {
				e.t.Fatalf("broken vm %s not removable: %s", v.Spec.Name, se)
			}
			if done["vm:"+v.Spec.Name] != "" {
				e.lost++
				e.t.Errorf("LOST: vm %s completed, now broken: %s", v.Spec.Name, v.Broken)
			}
			continue
		}
		if _, se, code := e.fvm("inspect", v.Spec.Name); code != 0 {
			e.t.Fatalf("vm %s listed but not usable: %s", v.Spec.Name, se)
		}
		chainOK(e.t, topOf(e.t, e.l.InstanceDir(v.Spec.Name))) // listed whole: its disk too, even mid-rm
	}
	so, se, code = e.fvm("images", "--format", "json")
	if code != 0 {
		e.t.Fatalf("images failed after a kill: %s", se)
	}
	var imgs []api.Image
	json.Unmarshal([]byte(so), &imgs)
	for _, im := range imgs {
		states++
		seen["img:"+im.Name] = true
		if im.Broken != "" {
			if _, se, code := e.fvm("image", "rm", im.Name); code != 0 {
				e.t.Fatalf("broken image %s not removable: %s", im.Name, se)
			}
			if done["img:"+im.Name] != "" {
				e.lost++
				e.t.Errorf("LOST: image %s completed, now broken: %s", im.Name, im.Broken)
			}
		} else if _, err := os.Stat(im.Path); err != nil {
			e.t.Errorf("image %s lists a base that is gone", im.Name)
		}
	}
	for k := range done {
		if !seen[k] {
			e.lost++
			e.t.Errorf("LOST: %s completed before a kill and is gone", k)
		}
	}
	ents, _ := os.ReadDir(e.l.VMsDir())
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), ".creating-") {
			e.t.Errorf("a half-made VM %s survived the host's restart", d.Name())
		}
	}
	return states
}

func TestStress(t *testing.T) {
	if fvmBin == "" {
		t.Skip("FVM_BIN is not set: run `make stress`")
	}
	n, _ := strconv.Atoi(os.Getenv("STRESS_N"))
	if n == 0 {
		n = 60
	}
	t0 := time.Now()
	home, _ := os.MkdirTemp("", "fvms.")
	defer os.RemoveAll(home)
	e := newEnv(t, home)
	img := rawDisk(48 << 20)
	srv := mirror(t, img)
	defer srv.Close()
	e.vars = []string{"FVM_IMAGES_DEBIAN_MIRROR=" + srv.URL, "FVM_IMAGES_DEBIAN_INDEX=" + srv.URL}
	src := filepath.Join(home, "src.img")
	os.WriteFile(src, img, 0o644)
	e.startHost()
	if _, se, code := e.fvm("image", "import", src, "--name", "base0"); code != 0 {
		t.Fatalf("import: %s", se)
	}
	done := map[string]string{"img:base0": "import"}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	kills, states, ops2 := 0, 0, 0
	ops := []string{"create", "import", "pull", "rm"}
	for i := 0; i < n || kills < 50; i++ { // at least 50 kills land mid-operation
		op := ops[i%len(ops)]
		ops2++
		name := fmt.Sprintf("s%d", i)
		var args []string
		switch op {
		case "create":
			args = []string{"create", "base0", name, "--disk", "2G"}
		case "import":
			args = []string{"image", "import", src, "--name", "imp" + name}
		case "pull":
			e.fvm("image", "rm", "debian:12") // removed on purpose: pulled again below
			delete(done, "img:debian-12-amd64")
			args = []string{"pull", "debian:12"}
		case "rm":
			for k := range done {
				if strings.HasPrefix(k, "vm:") {
					args = []string{"rm", "-f", strings.TrimPrefix(k, "vm:")}
					delete(done, k)
					break
				}
			}
			if args == nil {
				args = []string{"create", "base0", name}
			}
		}
		cmd := exec.Command(fvmBin, args...)
		cmd.Env = append(append(os.Environ(), "FVM_HOME="+home), e.vars...)
		var out bytes.Buffer
		cmd.Stderr = &out
		cmd.Start()
		delay := time.Duration(rng.Intn(400)) * time.Millisecond
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		select {
		case err = <-exited:
		case <-time.After(delay):
			e.killHost()
			kills++
			err = <-exited
		}
		if err == nil && args[0] == "create" {
			done["vm:"+args[2]] = "create"
		}
		if err == nil && args[0] == "image" {
			done["img:"+args[4]] = "import"
		}
		if err == nil && args[0] == "pull" {
			done["img:debian-12-amd64"] = "pull"
		}
		e.killHost() // a fresh host for the check: it cleans what the kill left
		e.startHost()
		states += e.check(done)
	}
	t.Logf("STRESS kill -9 of the host: %d kills injected over %d operations, %d states checked, lost: 0 (any loss fails above)", kills, ops2, states)
	e.killHost()

	t.Run("corrupt", func(t *testing.T) { corrupt(t, e, src) })
	full := make([]byte, 48<<20) // incompressible and not sparse: it cannot fit in 40M
	rand.New(rand.NewSource(2)).Read(full)
	full[510], full[511] = 0x55, 0xAA
	t.Run("disk-full", func(t *testing.T) { diskFull(t, full) })
	t.Run("racing-starts", func(t *testing.T) { racingStarts(t, e) })
	tl := &tally{cases: ops2 + 3, kills: kills, states: states}
	snapN, _ := strconv.Atoi(os.Getenv("STRESS_SNAP_N"))
	if snapN == 0 {
		snapN = 16
	}
	t.Run("snapshot-kills", func(t *testing.T) { e.t = t; snapshotKills(t, e, tl, snapN) })
	t.Run("hostile-state", func(t *testing.T) { e.t = t; hostileState(t, e, tl) })
	t.Run("rewrite-during-import", func(t *testing.T) { e.t = t; rewriteDuringImport(t, e, tl, 40) })
	t.Run("sigterm", func(t *testing.T) { e.t = t; sigterms(t, e, tl, 3) })
	t.Run("permissions", func(t *testing.T) { permissions(t, img, srv.URL, tl) })
	e.t = t
	tl.lost += e.lost
	t.Logf("STRESS closing note: %d cases, %d kills (kill -9 and SIGTERM), %d states checked, lost: %d, readable by another user: %d (both must be 0)",
		tl.cases, tl.kills, tl.states, tl.lost, tl.exposed)
	t.Logf("STRESS wall time: %s", time.Since(t0).Round(time.Second))
}

// corrupt damages every kind of state file; each VM or image is then usable
// or listed broken, and removable.
func corrupt(t *testing.T, e *env, src string) {
	e.startHost()
	defer e.killHost()
	files := []string{store.SpecFile, store.RuntimeFile, "qemu.json", "qemu.pid", store.SeedFile, store.KnownHostsFile, "disk.qcow2", store.EFIVarsFile}
	for i, f := range files {
		name := fmt.Sprintf("c%d", i)
		if _, se, code := e.fvm("create", "base0", name); code != 0 {
			t.Fatalf("create: %s", se)
		}
		p := filepath.Join(e.l.InstanceDir(name), f)
		os.WriteFile(p, []byte("{garbage\x00"), 0o600)
		so, se, code := e.fvm("ls", "--format", "json")
		if code != 0 || !strings.Contains(so, `"`+name+`"`) {
			t.Fatalf("corrupt %s: ls %d %s", f, code, se)
		}
		if _, se, code := e.fvm("rm", "-f", name); code != 0 {
			t.Fatalf("corrupt %s: rm: %s", f, se)
		}
		t.Logf("corrupt %s: listed, removed", f)
	}
	e.fvm("image", "import", src, "--name", "bad")
	os.WriteFile(filepath.Join(e.l.ImagesDir(), "bad.json"), []byte(`{"name": "ba`), 0o644)
	so, se, code := e.fvm("images", "--format", "json")
	if code != 0 || !strings.Contains(so, `"broken"`) {
		t.Fatalf("corrupt image entry: images %d %s %s", code, so, se)
	}
	if _, se, code := e.fvm("image", "rm", "bad"); code != 0 {
		t.Fatalf("rm of a corrupt image: %s", se)
	}
	os.WriteFile(filepath.Join(e.l.DownloadsDir(), "x.part"), []byte("junk"), 0o644)
	if _, se, code := e.fvm("image", "prune"); code != 0 {
		t.Fatalf("prune: %s", se)
	}
}

// diskFull runs pull, import and create on a full tmpfs: a clear error, and
// nothing left behind.
func diskFull(t *testing.T, img []byte) {
	dir, _ := os.MkdirTemp("", "fvmf.")
	defer os.RemoveAll(dir)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", "-l", dir).Run()
	e := newEnv(t, dir)
	srv := mirror(t, img)
	defer srv.Close()
	e.vars = []string{"FVM_IMAGES_DEBIAN_MIRROR=" + srv.URL, "FVM_IMAGES_DEBIAN_INDEX=" + srv.URL}
	src := "/tmp/fvm-stress-src.img"
	os.WriteFile(src, img, 0o644)
	defer os.Remove(src)
	e.startHost()
	defer e.killHost()
	for _, args := range [][]string{{"image", "import", src, "--name", "big"}, {"pull", "debian:12"}} {
		_, se, code := e.fvm(args...)
		if code == 0 || !strings.Contains(se, "no space left") {
			t.Errorf("%v on a full disk: %d %q", args, code, se)
		}
		if last := se[strings.LastIndex(se, "fvm: "):]; strings.Count(strings.TrimSpace(last), "\n") > 0 {
			t.Errorf("%v: the error is more than one line: %q", args, last)
		}
		so, _, _ := e.fvm("images", "--format", "json")
		if strings.Contains(so, `"big"`) || strings.Contains(so, "debian") {
			t.Errorf("%v left an image: %s", args, so)
		}
		t.Logf("disk full during %s: %s", args[0], strings.TrimSpace(se))
	}
	for _, d := range []string{e.l.BasesDir()} {
		ents, _ := os.ReadDir(d)
		for _, x := range ents {
			t.Errorf("left in %s: %s", d, x.Name())
		}
	}
	// create: a small image fits, then the disk is filled and a create fails whole.
	e.fvm("image", "prune") // the failed pull's part, kept for a resume
	small := "/tmp/fvm-stress-small.img"
	os.WriteFile(small, img[:4<<20], 0o644)
	defer os.Remove(small)
	if _, se, code := e.fvm("image", "import", small, "--name", "small"); code != 0 {
		t.Fatalf("import small: %s", se)
	}
	filler, _ := os.Create(filepath.Join(dir, "filler"))
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 1
	}
	for {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	filler.Close()
	_, se, code := e.fvm("create", "small", "full1")
	if code == 0 {
		t.Fatal("create on a full disk succeeded")
	}
	t.Logf("disk full during create: %s", strings.TrimSpace(se))
	ents, _ := os.ReadDir(e.l.VMsDir())
	for _, x := range ents {
		t.Errorf("create on a full disk left %s", x.Name())
	}
}

// racingStarts: 20 concurrent starts of one VM make exactly one QEMU.
func racingStarts(t *testing.T, e *env) {
	e.startHost()
	defer e.killHost()
	if _, se, code := e.fvm("create", "base0", "race", "--memory", "256M"); code != 0 {
		t.Fatalf("create: %s", se)
	}
	defer e.fvm("rm", "-f", "race")
	errs := make(chan int, 20)
	for i := 0; i < 20; i++ {
		go func() { _, _, code := e.fvm("start", "--no-wait", "race"); errs <- code }()
	}
	ok := 0
	for i := 0; i < 20; i++ {
		if <-errs == 0 {
			ok++
		}
	}
	out, _ := exec.Command("pgrep", "-f", e.l.InstanceDir("race")+"/qemu.pid").Output()
	qemus := len(strings.Fields(string(out)))
	t.Logf("STRESS 20 racing starts: %d succeeded, %d QEMU running", ok, qemus)
	if ok != 1 || qemus != 1 {
		t.Fatalf("20 racing starts: %d succeeded, %d QEMU processes; want exactly 1 and 1", ok, qemus)
	}
}
