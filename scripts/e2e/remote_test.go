//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/creack/pty"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/scripts/internal/sshdtest"
)

// TestRemoteHost drives the VMs of another account's fvm host, behind a real
// sshd on 127.0.0.1, through a context: one VM, booted once, for every verb
// (`run -- CMD` boots it), the files of the client uploaded, ports and the web
// console tunnelled back, and the refusals of a server that cannot serve.
func TestRemoteHost(t *testing.T) {
	ensureImage(t)
	e := newRemoteEnv(t)
	e.useContext(t)

	t.Run("import-client-file", func(t *testing.T) { e.importClientFile(t) })
	t.Run("share-paths", func(t *testing.T) {
		e.refused(t, e.fvm(t, "run", "-d", "debian-local", "nope", "-v", "/no/such/dir:/mnt"), "is not a directory on the VM's host")
		e.refused(t, e.fvm(t, "run", "-d", "debian-local", "nope", "-v", "./here:/mnt"), "give an absolute path on")
	})
	if t.Failed() {
		t.FailNow()
	}

	// The one boot: `run -- CMD`, with a share of the server's and a key file of the client's.
	const name = "rvm1"
	share := filepath.Join(e.dir, "share")
	os.MkdirAll(share, 0o755)
	os.WriteFile(filepath.Join(share, "hello"), []byte("from the server\n"), 0o644)
	extraKey := filepath.Join(e.client.HomeDir, ".ssh", "extra_ed25519")
	extraPub, err := sshdtest.KeyPair(extraKey)
	if err != nil {
		t.Fatal(err)
	}
	sshdtest.Chown(e.client, e.clientSSH)
	t0 := time.Now()
	r := e.fvm(t, "run", "--cold", "--wait", "debian-local", name, "--memory", "1G", "-v", share+":/mnt/share:ro",
		"--ssh-key", filepath.Join(e.clientSSH, "id_ed25519.pub"), "--ssh-key", extraKey+".pub",
		"--", "sh", "-c", "cat /mnt/share/hello; echo err >&2; exit 3")
	t.Logf("MEASURE remote run -- CMD (a cold boot under TCG, on the server): %s", time.Since(t0))
	t.Cleanup(func() { e.fvm(t, "rm", "-f", name) })
	if r.code != 3 || r.stdout != "from the server\n" || !strings.Contains(r.stderr, "err") {
		t.Fatalf("run -- CMD through the context: %+v %s", r, serialEnd(serialLogOf(store.HomeLayout(e.serverHome), name)))
	}

	t.Run("exec", func(t *testing.T) {
		r := e.fvm(t, "exec", name, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
		if r.code != 7 || r.stdout != "out\n" || strings.TrimSpace(r.stderr) != "err" {
			t.Fatalf("exec: %+v", r)
		}
		keys := e.mustFVM(t, "exec", name, "--", "cat", ".ssh/authorized_keys")
		if !strings.Contains(keys, strings.Fields(extraPub)[1]) {
			t.Fatalf("--ssh-key of a client file is not authorized in the VM:\n%s", keys)
		}
		data := make([]byte, 3<<20)
		rand.Read(data)
		r = e.fvmWith(t, "", bytes.NewReader(data), "exec", name, "--", "sha256sum")
		if want := fmt.Sprintf("%x", sha256.Sum256(data)); !strings.HasPrefix(r.stdout, want) {
			t.Fatalf("3 MiB of stdin through the context: %q, want %s", r.stdout, want)
		}
	})
	t.Run("ctrl-c", func(t *testing.T) {
		// Ctrl-C in a terminal signals the CLI's whole process group: the
		// command in the VM gets it, the CLI's ssh (a group of its own) does not.
		cmd := e.cmd(context.Background(), nil, e.bin, "exec", name, "--", "sh", "-c", `trap "echo got-int; exit 3" INT; echo started; while :; do sleep 0.2; done`)
		cmd.SysProcAttr.Setpgid = true
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(stdout)
		if line, _ := br.ReadString('\n'); line != "started\n" {
			t.Fatalf("remote said %q", line)
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		rest, _ := io.ReadAll(br)
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(string(rest), "got-int") {
			t.Fatalf("after Ctrl-C to the CLI's process group: exit %d, output %q; want the remote trap's exit 3", code, rest)
		}
	})
	t.Run("listings", func(t *testing.T) {
		if out := e.mustFVM(t, "ps"); !strings.Contains(out, name) || !strings.Contains(out, "running") {
			t.Errorf("ps: %s", out)
		}
		if out := e.mustFVM(t, "status", name); !strings.Contains(out, "host    "+e.host+" (context rt): fvm ") {
			t.Errorf("status does not name the host: %s", out)
		}
		if out := e.mustFVM(t, "inspect", name); !strings.Contains(out, `"hostPath": "`+share+`"`) {
			t.Errorf("inspect: %s", out)
		}
		if r := e.fvm(t, "check"); !strings.Contains(r.stdout, "host     "+e.host) { // its checks may fail there (no KVM)
			t.Errorf("check does not name the host: %s", r.stdout)
		}
		e.mustFVM(t, "wait", name)
	})
	t.Run("pty-resize", func(t *testing.T) { e.ptyResize(t, name) })
	t.Run("cp", func(t *testing.T) { e.cpBothWays(t, name) })
	t.Run("console", func(t *testing.T) { e.console(t, name) })
	t.Run("logs-follow", func(t *testing.T) { e.logsFollow(t, name) })
	t.Run("ports-and-port-forward", func(t *testing.T) { e.portForward(t, name) })
	t.Run("display", func(t *testing.T) { e.display(t, name) })
	t.Run("ssh-config", func(t *testing.T) { e.sshConfig(t, name) })
	t.Run("ssh-killed-mid-exec", func(t *testing.T) { e.sshKilled(t, name) })
	if extra := e.newListeners(t); len(extra) > 0 {
		t.Errorf("new listeners on non-loopback addresses: %v", extra)
	}
	if os.Getenv("FVM_E2E_FULL") != "" {
		t.Run("image-build-on-the-server", func(t *testing.T) {
			t0 := time.Now()
			r := e.fvm(t, "image", "build", "debian", "--name", "built-there")
			if r.code != 0 || !strings.Contains(r.stderr, "Building on "+remoteUser+"@127.0.0.1") {
				t.Fatalf("image build through the context: %+v", r)
			}
			t.Logf("MEASURE image build on the server through the context: %s", time.Since(t0))
			if out := e.mustFVM(t, "images"); !strings.Contains(out, "built-there") {
				t.Fatalf("the server's images: %s", out)
			}
			if _, err := os.Stat(filepath.Join(e.serverHome, "data", "images", "built-there.json")); err != nil {
				t.Fatalf("not registered on the server: %v", err)
			}
			e.refused(t, e.fvm(t, "image", "build", "debian", "--sources", "/etc/apt/sources.list"), "is a file of this machine")
		})
		t.Run("stop-start", func(t *testing.T) {
			e.mustFVM(t, "stop", name)
			e.mustFVM(t, "start", name)
			if got := strings.TrimSpace(e.mustFVM(t, "exec", name, "--", "cat", "/mnt/share/hello")); got != "from the server" {
				t.Fatalf("after stop and start: %q", got)
			}
		})
	}
	t.Run("rm", func(t *testing.T) {
		e.mustFVM(t, "rm", "-f", name)
		if _, err := os.Stat(store.HomeLayout(e.serverHome).InstanceDir(name)); !os.IsNotExist(err) {
			t.Errorf("the VM's dir on the server is left: %v", err)
		}
		e.mustFVM(t, "image", "rm", "debian-local")
		e.mustFVM(t, "image", "prune")
	})
}

// TestRemoteRefusals: servers that cannot serve, keys that must not be
// accepted and fvms of another API revision are each refused with one line
// that names the fix. No VM, no image.
func TestRemoteRefusals(t *testing.T) {
	e := newRemoteEnv(t)
	t.Run("refusals", func(t *testing.T) { e.refusals(t) })
	t.Run("other-revision", func(t *testing.T) { e.otherRevision(t) })
}

// TestRemoteUploads: contexts, and files only the client can read reaching
// the server as uploads, a cut one leaving nothing. No VM, no image build.
func TestRemoteUploads(t *testing.T) {
	e := newRemoteEnv(t)
	e.useContext(t)
	t.Run("small-disk", func(t *testing.T) {
		disk := make([]byte, 4<<20)
		disk[510], disk[511] = 0x55, 0xAA // a raw disk by content (an MBR)
		file := filepath.Join(e.client.HomeDir, "small disk.raw")
		os.WriteFile(file, disk, 0o600)
		sshdtest.Chown(e.client, file)
		t.Cleanup(func() { os.Remove(file) })
		e.mustFVM(t, "image", "import", file)
		var imgs []api.Image
		json.Unmarshal([]byte(e.mustFVM(t, "images", "--format", "json")), &imgs)
		if len(imgs) != 1 || imgs[0].Name != "small-disk" || imgs[0].Digest != fmt.Sprintf("sha256:%x", sha256.Sum256(disk)) || imgs[0].Source != "upload:small disk.raw" {
			t.Fatalf("the server's images: %+v", imgs)
		}
		e.mustFVM(t, "image", "rm", "small-disk")
		e.mustFVM(t, "image", "prune")
	})
	t.Run("cut-upload", func(t *testing.T) { e.cutUpload(t) })
	t.Run("iso-upload", func(t *testing.T) { e.isoUpload(t) })
}

// useContext makes the server a context and the current one, as a user would.
func (e *remoteEnv) useContext(t *testing.T) {
	t.Helper()
	e.mustFVM(t, "context", "create", "rt", e.host, "--description", "the e2e server")
	if out := e.mustFVM(t, "context", "ls"); !strings.Contains(out, "rt") || !strings.Contains(out, "default *") {
		t.Fatalf("context ls: %s", out)
	}
	e.mustFVM(t, "context", "use", "rt")
	if out := e.mustFVM(t, "context", "ls"); !strings.Contains(out, "rt *") {
		t.Fatalf("context ls after use: %s", out)
	}
	var inspected []struct{ Name, Host string }
	if err := json.Unmarshal([]byte(e.mustFVM(t, "context", "inspect")), &inspected); err != nil || len(inspected) != 1 || inspected[0].Host != e.host {
		t.Fatalf("context inspect: %v %+v", err, inspected)
	}
	if st, err := os.Stat(filepath.Join(e.clientHome, "contexts.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("contexts file: %v %v, want mode 0600", st, err)
	}
	if out := e.mustFVM(t, "version"); !strings.Contains(out, "host: "+e.host+" (context rt): fvm ") {
		t.Errorf("version does not name the host: %s", out)
	}
}

// refusals: servers that cannot serve say why in one line, and nothing is
// accepted that should not be.
func (e *remoteEnv) refusals(t *testing.T) {
	port := strconv.Itoa(e.sshd.Port)
	known := filepath.Join(e.clientSSH, "known_hosts")
	before, _ := os.ReadFile(known)
	e.refused(t, e.fvm(t, "--host", "ssh://"+remoteUser+"@localhost:"+port, "ps"), "is not known: fvm never accepts an unknown key")
	if after, _ := os.ReadFile(known); !bytes.Equal(before, after) {
		t.Errorf("an unknown server key was written to known_hosts")
	}
	// A changed key: known_hosts names another key for the server.
	other, err := sshdtest.KeyPair(filepath.Join(e.dir, "otherkey"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(other)
	os.WriteFile(known, []byte(fmt.Sprintf("[127.0.0.1]:%s %s %s\n", port, f[0], f[1])), 0o600)
	e.refused(t, e.fvm(t, "--host", e.host, "ps"), "has CHANGED")
	os.WriteFile(known, before, 0o600)

	e.refused(t, e.fvm(t, "--host", "ssh://"+remoteUser+"@127.0.0.1:"+strconv.Itoa(e.sshd.BarePort), "ps"),
		"fvm is not installed on "+remoteUser+"@127.0.0.1:"+strconv.Itoa(e.sshd.BarePort)+" (or not on its PATH")
	e.refused(t, e.fvm(t, "--host", "ssh://nosuchuser@127.0.0.1:"+port, "ps"), "refused the login as nosuchuser")
	e.refused(t, e.fvm(t, "--host", "ssh://-oProxyCommand=sh@127.0.0.1", "ps"), "is no user or server name")
	e.refused(t, e.fvm(t, "--context", "nope", "ps"), `context "nope" does not exist`)
	if e.serverHostPID() != 0 {
		t.Errorf("a refused connection started the server's host")
	}
}

// otherRevision: a server's fvm of another API revision, and a host of another
// revision behind a current fvm, each say which side to upgrade.
func (e *remoteEnv) otherRevision(t *testing.T) {
	rev99 := filepath.Join(e.dir, "bin99", "fvm")
	build := exec.Command("go", "build", "-o", rev99, "-ldflags", "-X github.com/fvmhq/fvm/core/api.revisionOverride=99", ".")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build a binary of API revision 99: %v: %s", err, out)
	}
	os.Chmod(filepath.Dir(rev99), 0o755)
	os.Chmod(rev99, 0o755)

	// This machine's fvm is the newer one.
	e.refused(t, e.fvmWith(t, rev99, nil, "--host", e.host, "ps"),
		"speaks API revision "+strconv.Itoa(api.Revision)+"; fvm")
	e.refused(t, e.fvmWith(t, rev99, nil, "--host", e.host, "ps"), "here speaks revision 99: upgrade fvm on "+remoteUser+"@127.0.0.1")
	e.stopServerHost(t)

	// The server's fvm is the newer one: its greeting says so...
	normal := e.serverBin + ".keep"
	os.Rename(e.serverBin, normal)
	copyFile(t, rev99, e.serverBin, 0o755)
	e.refused(t, e.fvm(t, "--host", e.host, "ps"), "speaks API revision 99; fvm")
	e.refused(t, e.fvm(t, "--host", e.host, "ps"), "upgrade fvm on this machine")
	os.Rename(normal, e.serverBin)
	// ...and its host, left running, is refused by the API's own handshake.
	e.refused(t, e.fvm(t, "--host", e.host, "ps"), "API revision 99; this fvm")
	e.stopServerHost(t)
}

// importClientFile: a disk only the client can read reaches the server's cache.
func (e *remoteEnv) importClientFile(t *testing.T) {
	img := imageNamed(t, "debian-local")
	file := filepath.Join(e.client.HomeDir, "debian-local.qcow2")
	copyFile(t, img.Path, file, 0o600)
	sshdtest.Chown(e.client, file)
	t.Cleanup(func() { os.Remove(file) })
	t0 := time.Now()
	r := e.fvm(t, "image", "import", file, "--name", "debian-local")
	if r.code != 0 || !strings.Contains(r.stderr, "Uploaded debian-local.qcow2 to "+remoteUser+"@127.0.0.1") {
		t.Fatalf("import of a client file: %+v", r)
	}
	t.Logf("MEASURE upload and import of a %s image through the context: %s", fmt.Sprint(img.Size>>20)+" MiB", time.Since(t0))
	var imgs []api.Image
	if err := json.Unmarshal([]byte(e.mustFVM(t, "images", "--format", "json")), &imgs); err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "debian-local" || imgs[0].Digest != img.Digest || !strings.HasPrefix(imgs[0].Path, e.serverHome) {
		t.Fatalf("the server's images: %+v (want debian-local, %s, in %s)", imgs, img.Digest, e.serverHome)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.serverHome, "cache", "uploads")); len(ents) != 0 {
		t.Errorf("the upload stayed after its import: %v", ents)
	}
}

// cutUpload: an upload cut short leaves nothing registered and no file.
func (e *remoteEnv) cutUpload(t *testing.T) {
	file := filepath.Join(e.client.HomeDir, "big.raw")
	f, _ := os.Create(file)
	f.Truncate(0)
	io.CopyN(f, rand.Reader, 300<<20)
	f.Close()
	sshdtest.Chown(e.client, file)
	t.Cleanup(func() { os.Remove(file) })
	c := e.cmd(context.Background(), nil, e.bin, "image", "import", file, "--name", "cut")
	var se bytes.Buffer
	c.Stderr = &se
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	uploads := filepath.Join(e.serverHome, "cache", "uploads")
	for i := 0; i < 200; i++ { // until bytes arrive
		ents, _ := os.ReadDir(uploads)
		if len(ents) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	c.Process.Kill()
	c.Wait()
	for i := 0; i < 100; i++ {
		if ents, _ := os.ReadDir(uploads); len(ents) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ents, _ := os.ReadDir(uploads); len(ents) != 0 {
		t.Errorf("a cut upload left %v on the server", ents)
	}
	if out := e.mustFVM(t, "images"); strings.Contains(out, "cut") {
		t.Errorf("a cut upload registered an image: %s", out)
	}
}

// isoUpload: --iso names the client's file; the server installs from its copy.
func (e *remoteEnv) isoUpload(t *testing.T) {
	iso := make([]byte, 0x9000)
	copy(iso[0x8001:], "CD001")
	file := filepath.Join(e.client.HomeDir, "installer.iso")
	os.WriteFile(file, iso, 0o600)
	sshdtest.Chown(e.client, file)
	t.Cleanup(func() { os.Remove(file) })
	e.mustFVM(t, "create", "--iso", file, "isovm", "--disk", "2G")
	defer e.mustFVM(t, "rm", "-f", "isovm")
	var v api.VM
	if err := json.Unmarshal([]byte(e.mustFVM(t, "inspect", "isovm")), &v); err != nil {
		t.Fatal(err)
	}
	if filepath.Base(v.Spec.ISO) != "installer.iso" || !strings.HasPrefix(v.Spec.ISO, filepath.Join(e.serverHome, "cache", "uploads")) {
		t.Fatalf("the VM installs from %q, want the server's copy of the upload", v.Spec.ISO)
	}
	if b, err := os.ReadFile(v.Spec.ISO); err != nil || !bytes.Equal(b, iso) {
		t.Fatalf("the server's copy of the ISO: %v", err)
	}
}

func (e *remoteEnv) ptyResize(t *testing.T, name string) {
	cmd := e.cmd(context.Background(), []string{"TERM=xterm"}, e.bin, "ssh", name)
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	f, err := pty.StartWithAttrs(cmd, &pty.Winsize{Rows: 24, Cols: 80}, cmd.SysProcAttr)
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
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
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
	time.Sleep(time.Second) // SIGWINCH → resize frame → through ssh → window-change
	fmt.Fprint(f, "echo size=$(stty size)\r")
	waitFor("size=40 132")
	fmt.Fprint(f, "exit 5\r")
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 5 {
		t.Fatalf("interactive shell exit %d, want 5", code)
	}
}

func (e *remoteEnv) cpBothWays(t *testing.T, name string) {
	dir := filepath.Join(e.client.HomeDir, "cp")
	os.MkdirAll(filepath.Join(dir, "tree", "sub"), 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	big := make([]byte, 5<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(dir, "tree", "sub", "big.bin"), big, 0o640)
	os.WriteFile(filepath.Join(dir, "tree", "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755)
	sshdtest.Chown(e.client, dir)
	e.mustFVM(t, "cp", filepath.Join(dir, "tree"), name+":/tmp/")
	if out := strings.TrimSpace(e.mustFVM(t, "exec", name, "--", "/tmp/tree/run.sh; stat -c %a /tmp/tree/sub/big.bin")); out != "ran\n640" {
		t.Fatalf("in the VM: %q", out)
	}
	back := filepath.Join(dir, "back")
	os.MkdirAll(back, 0o755)
	sshdtest.Chown(e.client, back)
	e.mustFVM(t, "cp", name+":/tmp/tree", back)
	got, err := os.ReadFile(filepath.Join(back, "tree", "sub", "big.bin"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("the file did not come back byte-identical: %v", err)
	}
}

func (e *remoteEnv) console(t *testing.T, name string) {
	cmd := e.cmd(context.Background(), nil, e.bin, "console", "--tail", "0", name)
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	f, err := pty.StartWithAttrs(cmd, &pty.Winsize{Rows: 40, Cols: 120}, cmd.SysProcAttr)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	var out bytes.Buffer
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			mu.Lock()
			out.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func(s string) bool { mu.Lock(); defer mu.Unlock(); return strings.Contains(out.String(), s) }
	deadline := time.Now().Add(60 * time.Second)
	for !seen("login:") && time.Now().Before(deadline) {
		f.Write([]byte("\r"))
		time.Sleep(time.Second)
	}
	if !seen("login:") {
		mu.Lock()
		t.Fatalf("no login prompt on the remote serial console:\n%s", out.String())
	}
	f.Write([]byte{0x1d}) // Ctrl-]
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("console did not detach on Ctrl-]")
	}
	// What the console wrote last may still be in the pty once it exited.
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 || !seen("Detached from "+name) {
		mu.Lock()
		t.Fatalf("detach: exit %d, output ends %q", code, tail(out.String()))
	}
}

func (e *remoteEnv) logsFollow(t *testing.T, name string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := e.cmd(ctx, nil, e.bin, "logs", "-f", name)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	mark := fmt.Sprintf("remote-mark-%d", time.Now().UnixNano())
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), mark) {
				found <- true
				return
			}
		}
		found <- false
	}()
	time.Sleep(time.Second)
	e.mustFVM(t, "exec", name, "--", "echo "+mark+" | sudo tee /dev/ttyS0 >/dev/null")
	select {
	case ok := <-found:
		if !ok {
			t.Fatal("logs -f ended without the line written to the serial port")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("logs -f did not show the line written to the serial port")
	}
	cancel()
}

func (e *remoteEnv) portForward(t *testing.T, name string) {
	e.mustFVM(t, "exec", name, "--", "mkdir -p /tmp/www && echo hello-remote > /tmp/www/index.html && cd /tmp/www && setsid -f python3 -m http.server 8080 >/dev/null 2>&1")
	var ports []api.Port
	for i := 0; i < 60; i++ { // the server's host forwards it on its own 127.0.0.1 by itself
		json.Unmarshal([]byte(e.mustFVM(t, "ports", name, "--format", "json")), &ports)
		if len(ports) > 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(ports) == 0 || ports[0].GuestPort != 8080 || ports[0].HostIP != "127.0.0.1" {
		t.Errorf("fvm ports through the context: %+v", ports)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := e.cmd(ctx, nil, e.bin, "port-forward", name, ":8080")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	var local string
	if _, err := fmt.Sscanf(line, "Forwarding from %s -> ", &local); err != nil || !strings.HasPrefix(local, "127.0.0.1:") {
		t.Fatalf("port-forward said %q", line)
	}
	var got string
	t0 := time.Now()
	for i := 0; i < 15 && got != "hello-remote"; i++ { // httpGet gives each try 2 s
		got = strings.TrimSpace(httpGet("http://" + local + "/index.html"))
	}
	if got != "hello-remote" {
		t.Fatalf("through port-forward: %q", got)
	}
	t.Logf("MEASURE first answer through port-forward: %s", time.Since(t0))
	if extra := e.newListeners(t); len(extra) > 0 {
		t.Errorf("port-forward listens on non-loopback addresses: %v", extra)
	}
}

func (e *remoteEnv) display(t *testing.T, name string) {
	browserPath := chromium(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := e.cmd(ctx, nil, e.bin, "display", "--print-url", name)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	pageURL := strings.TrimSpace(line)
	if !strings.HasPrefix(pageURL, "http://127.0.0.1:") || !strings.Contains(pageURL, "/vm/"+name+"/?code=") {
		t.Fatalf("display --print-url said %q", line)
	}
	bctx := newBrowser(t, browserPath)
	if err := chromedp.Do(bctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, bctx, "the remote screen connected through the tunnel", `window.fvm && window.fvm.status === "connected" && !!document.querySelector("#screen canvas")`)
	// Text on the screen, then the canvas against the screen as `fvm
	// screenshot` takes it through the context: the same picture, not blank.
	e.mustFVM(t, "exec", name, "--", "sudo dmesg -n 1; printf 'remote-screen\n%.0s' $(seq 20) | sudo tee /dev/tty1 >/dev/null")
	shot := filepath.Join(e.client.HomeDir, "remote-screen.png")
	t.Cleanup(func() { os.Remove(shot) })
	var last string
	for try := 0; ; try++ {
		canvas := canvasImage(t, bctx)
		e.mustFVM(t, "screenshot", name, shot)
		dump := pngFile(t, shot)
		diff, lit := compareImages(canvas, dump)
		last = fmt.Sprintf("canvas %v, screenshot %v: %.3f%% of pixels differ; %d lit pixels", canvas.Bounds().Size(), dump.Bounds().Size(), 100*diff, lit)
		if canvas.Bounds() == dump.Bounds() && diff < 0.002 && lit > 200 {
			t.Logf("MEASURE %s (try %d)", last, try+1)
			savePNG(t, "remote-display.png", canvas)
			break
		}
		if try == 10 {
			t.Fatalf("the page's canvas does not show the remote guest's screen: %s", last)
		}
		time.Sleep(time.Second)
	}
	// A request naming another Host through the tunnel is still refused.
	req, _ := http.NewRequest("GET", pageURL, nil)
	req.Host = "evil.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a foreign Host through the tunnel: %v %v, want 403", resp, err)
	}
	if extra := e.newListeners(t); len(extra) > 0 {
		t.Errorf("display listens on non-loopback addresses: %v", extra)
	}
}

func (e *remoteEnv) sshConfig(t *testing.T, name string) {
	cfg := filepath.Join(e.client.HomeDir, "fvm-ssh-config")
	os.WriteFile(cfg, []byte(e.mustFVM(t, "ssh-config", name)), 0o644)
	t.Cleanup(func() { os.Remove(cfg) })
	alias := name + ".rt.fvm"
	ssh := func(extra ...string) (string, error) {
		args := append([]string{"-F", cfg, "-o", "BatchMode=yes"}, extra...)
		out, err := e.cmd(context.Background(), nil, "ssh", append(args, alias, "hostname")...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := ssh("-o", "ControlMaster=no", "-o", "ControlPath=none"); err != nil || out != name {
		t.Fatalf("plain ssh through the server with ssh-config: %v: %s", err, out)
	}
	// The VM's key is pinned: another key in its known_hosts file is refused.
	var known string
	for _, l := range strings.Split(e.mustFVM(t, "ssh-config", name), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "UserKnownHostsFile" {
			known = f[1]
		}
	}
	pinned, err := os.ReadFile(known)
	if err != nil {
		t.Fatalf("known_hosts of ssh-config: %v", err)
	}
	other, _ := sshdtest.KeyPair(filepath.Join(e.dir, "vmkey"))
	os.WriteFile(known, []byte(alias+" "+strings.Join(strings.Fields(other)[:2], " ")+"\n"), 0o600)
	out, err := ssh("-o", "ControlMaster=no", "-o", "ControlPath=none")
	os.WriteFile(known, pinned, 0o600)
	if err == nil || !strings.Contains(out, "REMOTE HOST IDENTIFICATION HAS CHANGED") {
		t.Fatalf("ssh-config accepted another key for the VM: %v: %s", err, out)
	}
}

// sshKilled: the client's ssh killed under a running command ends the CLI
// with one line; the VM runs on and answers at once.
func (e *remoteEnv) sshKilled(t *testing.T, name string) {
	cmd := e.cmd(context.Background(), nil, e.bin, "exec", name, "--", "sh", "-c", "echo started; sleep 120")
	stdout, _ := cmd.StdoutPipe()
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "started\n" {
		t.Fatalf("exec said %q", line)
	}
	// The command's connection is a channel of the shared connection (the
	// API forward): the CLI runs no ssh of its own, the master is its ssh.
	if child := childSSH(cmd.Process.Pid); child != 0 {
		cmd.Process.Kill()
		t.Fatalf("the CLI runs an ssh of its own (pid %d): the shared connection's API forward was not used", child)
	}
	ssh := e.sharedConnection()
	if ssh == 0 {
		cmd.Process.Kill()
		t.Fatal("no shared ssh connection of the client")
	}
	syscall.Kill(ssh, syscall.SIGKILL)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the CLI did not end when its ssh was killed")
	}
	msg := strings.TrimSpace(se.String())
	if cmd.ProcessState.ExitCode() == 0 || strings.Count(msg, "\n") > 0 || !strings.Contains(msg, "the SSH connection to "+remoteUser+"@127.0.0.1") || !strings.Contains(msg, name+" keeps running there") {
		t.Fatalf("killed ssh: exit %d, %q; want one line saying the connection was lost", cmd.ProcessState.ExitCode(), msg)
	}
	t0 := time.Now()
	e.mustFVM(t, "exec", name, "--", "true")
	t.Logf("MEASURE exec right after the client's ssh was killed: %s", time.Since(t0))
	if out := e.mustFVM(t, "ps"); !strings.Contains(out, "running") {
		t.Fatalf("ps: %s", out)
	}
}
