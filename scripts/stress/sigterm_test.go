//go:build stress

package stress

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/image"
)

// qcow2Head is the first sector of a qcow2 of 1 MiB whose header names
// backing (or, with dataFile, an external data file), or neither.
func qcow2Head(backing, dataFile string) []byte {
	be := binary.BigEndian
	h := make([]byte, 512)
	copy(h, "QFI\xfb")
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], 16)
	be.PutUint64(h[24:], 1<<20)
	be.PutUint32(h[36:], 1)
	be.PutUint64(h[40:], 256)
	be.PutUint32(h[100:], 104)
	off := 104
	if dataFile != "" {
		be.PutUint64(h[72:], 1<<2)
		be.PutUint32(h[off:], 0x44415441)
		be.PutUint32(h[off+4:], uint32(len(dataFile)))
		copy(h[off+8:], dataFile)
		off += 8 + (len(dataFile)+7)&^7
	}
	off += 8
	if backing != "" {
		be.PutUint64(h[8:], uint64(off))
		be.PutUint32(h[16:], uint32(len(backing)))
		copy(h[off:], backing)
	}
	return h
}

// rewriteDuringImport imports a file rounds times while its first sector is
// rewritten in place (same inode) between a safe qcow2, qcow2s naming
// /etc/shadow as backing or data file, and a raw disk: no base in the cache
// may name another file, and every image's format must be its base's.
func rewriteDuringImport(t *testing.T, e *env, n *tally, rounds int) {
	e.startHost()
	defer e.killHost()
	src := filepath.Join(e.home, "rewritten.img")
	raw := rawDisk(8 << 20)
	os.WriteFile(src, raw, 0o644)
	heads := [][]byte{qcow2Head("", ""), qcow2Head("/etc/shadow", ""), qcow2Head("", ""), qcow2Head("", "/etc/shadow"), raw[:512]}
	w, err := os.OpenFile(src, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var flips atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w.WriteAt(heads[i%len(heads)], 0)
			flips.Add(1)
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // let the importer's reads fall on every kind
			}
		}
	})
	registered, refused := 0, 0
	for i := range rounds {
		n.cases++
		_, se, code := e.fvm("image", "import", src, "--name", fmt.Sprintf("rw%d", i))
		if code == 0 {
			registered++
		} else {
			refused++
			if splitError(se) {
				t.Errorf("import %d: the refusal is more than one line: %q", i, se)
			}
		}
	}
	close(stop)
	wg.Wait()
	bad := 0
	ents, _ := os.ReadDir(e.l.BasesDir())
	for _, b := range ents {
		info, err := image.Inspect(filepath.Join(e.l.BasesDir(), b.Name()))
		n.states++
		if err == nil && (info.BackingFile != "" || info.DataFile != "" || info.HasDataFile) {
			bad++
			t.Errorf("base %s names %q / %q", b.Name(), info.BackingFile, info.DataFile)
		}
	}
	so, _, _ := e.fvm("images", "--format", "json")
	var imgs []api.Image
	json.Unmarshal([]byte(so), &imgs)
	for _, img := range imgs {
		if !strings.HasPrefix(img.Name, "rw") {
			continue
		}
		n.states++
		if info, err := image.Inspect(img.Path); err != nil || string(info.Format) != img.Format {
			bad++
			t.Errorf("image %s is registered as %s, its base is %s (%v)", img.Name, img.Format, info.Format, err)
		}
		e.fvm("image", "rm", img.Name)
	}
	t.Logf("STRESS in-place rewrite during import: %d imports during %d rewrites: %d registered, %d refused, %d bases naming another file or of another format (must be 0)",
		rounds, flips.Load(), registered, refused, bad)
}

// sigterms sends SIGTERM to the host in the middle of every long operation
// (create from a file, import, pull, start, a graceful stop that waits for
// the guest) and checks that it exits within its grace period, that the next
// host serves and that nothing completed was lost. Then `fvm image build` is
// interrupted the same way (it runs in the CLI): it stops, leaving no image.
func sigterms(t *testing.T, e *env, n *tally, rounds int) {
	big := filepath.Join(e.home, "big.img")
	b := rawDisk(256 << 20)
	rand.New(rand.NewSource(3)).Read(b[1<<20:]) // incompressible, not sparse: a copy that takes a while
	b[510], b[511] = 0x55, 0xAA
	os.WriteFile(big, b, 0o644)
	done := map[string]string{"img:base0": "import"}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var worst time.Duration
	ops := []string{"create", "import", "pull", "start", "stop"}
	for i := 0; i < rounds*len(ops); i++ {
		op := ops[i%len(ops)]
		name := fmt.Sprintf("t%d", i)
		n.cases++
		e.startHost()
		var args []string
		delay := time.Duration(rng.Intn(800)) * time.Millisecond
		switch op {
		case "create":
			args = []string{"create", big, name}
		case "import":
			args = []string{"image", "import", big, "--name", "ti" + name}
		case "pull":
			e.fvm("image", "rm", "debian:12")
			delete(done, "img:debian-12-amd64")
			args = []string{"pull", "debian:12"}
		case "start":
			if _, se, code := e.fvm("create", "base0", name, "--memory", "256M"); code != 0 {
				t.Fatalf("create: %s", se)
			}
			done["vm:"+name] = "create"
			args = []string{"start", "--no-wait", name}
		case "stop":
			if _, se, code := e.fvm("create", "base0", name, "--memory", "256M"); code != 0 {
				t.Fatalf("create: %s", se)
			}
			done["vm:"+name] = "create"
			if _, se, code := e.fvm("start", "--no-wait", name); code != 0 {
				t.Fatalf("start: %s", se)
			}
			// Firmware with no OS ignores the power button: the stop waits.
			args = []string{"stop", "--timeout", "60", name}
			delay = 2*time.Second + delay
		}
		cmd := exec.Command(fvmBin, args...)
		cmd.Env = append(append(os.Environ(), "FVM_HOME="+e.home), e.vars...)
		var out bytes.Buffer
		cmd.Stderr = &out
		cmd.Start()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		select {
		case err = <-exited: // done before the signal
		case <-time.After(delay):
			took, ok := e.stopHost(15 * time.Second)
			n.kills++
			worst = max(worst, took)
			if !ok {
				t.Errorf("%s: the host was still there 15s after SIGTERM", op)
			}
			select {
			case err = <-exited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				err = <-exited
				t.Errorf("%s: the CLI did not end when its host stopped", op)
			}
			if err != nil && splitError(out.String()) {
				t.Errorf("%s: the CLI's error is more than one line: %q", op, out.String())
			}
		}
		if err == nil {
			switch op {
			case "create":
				done["vm:"+name] = "create"
			case "import":
				done["img:ti"+name] = "import"
			case "pull":
				done["img:debian-12-amd64"] = "pull"
			}
		}
		e.killHost() // whatever is left; a fresh host for the check
		e.startHost()
		n.states += e.check(done)
		if op == "start" || op == "stop" || op == "create" {
			e.fvm("rm", "-f", name) // the VM outlived its host: the new one adopted it
			delete(done, "vm:"+name)
		}
		e.killHost()
	}
	t.Logf("STRESS SIGTERM to the host during create, import, pull, start and stop: %d signals, slowest exit %s (grace 10s)", rounds*len(ops), worst.Round(time.Millisecond))
	imageBuildSIGTERM(t, e, n)
}

// imageBuildSIGTERM interrupts `fvm image build` (which runs in the CLI, not
// the host) with SIGTERM while mmdebstrap works: it ends within its grace and
// registers nothing. Skipped where mmdebstrap is missing.
func imageBuildSIGTERM(t *testing.T, e *env, n *tally) {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Logf("STRESS SIGTERM during image build: skipped (no mmdebstrap)")
		return
	}
	n.cases++
	cmd := exec.Command(fvmBin, "image", "build", "debian", "--name", "interrupted")
	cmd.Env = append(append(os.Environ(), "FVM_HOME="+e.home), e.vars...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("image build ended before the signal: %v\n%s", err, out.String())
	case <-time.After(8 * time.Second):
	}
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	n.kills++
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		t.Errorf("fvm image build was still running 30s after SIGTERM")
	}
	took := time.Since(t0)
	time.Sleep(time.Second)
	if left, _ := exec.Command("pgrep", "-g", fmt.Sprint(cmd.Process.Pid)).Output(); len(bytes.TrimSpace(left)) > 0 {
		t.Errorf("image build left processes: %s", left)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	e.startHost()
	defer e.killHost()
	so, _, _ := e.fvm("images", "--format", "json")
	if strings.Contains(so, `"interrupted"`) {
		t.Errorf("an interrupted image build registered an image: %s", so)
	}
	n.states++
	t.Logf("STRESS SIGTERM during image build: ended in %s, nothing registered", took.Round(time.Millisecond))
}
