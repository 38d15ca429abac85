package qemu

import (
	"context"
	"fmt"
	"image"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/vm"
)

// TestE2EDisplay boots a real guest (FVM_E2E_DISPLAY_BASE: a base disk such as
// the one `fvm image build debian` makes, booted without a seed, so cloud-init
// stays out of it) twice from fresh overlays, with the display every VM gets
// and with -display none only, and measures the time to the serial login
// prompt of each, side by side. The VM with the display is then saved
// (migrated to a file) and restored with -incoming, as suspend and resume do:
// its screen, VNC and serial socket must work after the restore.
//
//	FVM_E2E_DISPLAY_BASE=$FVM_HOME/cache/bases/sha256-....qcow2 go test -v -run TestE2EDisplay ./core/driver/qemu/
func TestE2EDisplay(t *testing.T) {
	base := os.Getenv("FVM_E2E_DISPLAY_BASE")
	if base == "" {
		t.Skip("set FVM_E2E_DISPLAY_BASE to a bootable base disk (qcow2) to boot it with and without a display")
	}
	needQEMUImg(t)
	qemuPath, err := DefaultQEMUPath(vm.AMD64)
	if err != nil {
		t.Skip(err)
	}
	fw, err := FindFirmware(vm.AMD64, qemuPath, nil)
	if err != nil {
		t.Skip(err)
	}
	boot := func(display bool) (*guest, time.Duration) {
		g := newGuest(t, qemuPath, fw, base, display)
		t0 := time.Now()
		g.start(t)
		g.waitSerial(t, "login: ", 0, 5*time.Minute)
		return g, time.Since(t0)
	}
	// Pairs alternate which boots first (FVM_E2E_DISPLAY_PAIRS, default 1), so
	// that a machine growing busier during the run does not favour either.
	pairs, _ := strconv.Atoi(os.Getenv("FVM_E2E_DISPLAY_PAIRS"))
	pairs = max(pairs, 1)
	var on *guest
	var sumOff, sumOn time.Duration
	for i := 0; i < pairs; i++ {
		var tOff, tOn time.Duration
		onFirst := (pairs-1-i)%2 == 1 // the last pair boots the display second, to keep it
		for _, display := range []bool{onFirst, !onFirst} {
			g, d := boot(display)
			if display {
				tOn = d
				if i == pairs-1 {
					on = g // kept running for the save and restore
					continue
				}
			} else {
				tOff = d
			}
			g.quit(t)
		}
		sumOff, sumOn = sumOff+tOff, sumOn+tOn
		t.Logf("MEASURE pair %d: TCG boot to the serial login prompt: -display none %s, with virtio-vga + USB keyboard/tablet + VNC %s (%+.1f%%)",
			i+1, tOff.Round(100*time.Millisecond), tOn.Round(100*time.Millisecond), 100*(tOn.Seconds()-tOff.Seconds())/tOff.Seconds())
	}
	if pairs > 1 {
		t.Logf("MEASURE mean of %d pairs: -display none %s, with the display %s (%+.1f%%)", pairs,
			(sumOff / time.Duration(pairs)).Round(100*time.Millisecond), (sumOn / time.Duration(pairs)).Round(100*time.Millisecond),
			100*(sumOn.Seconds()-sumOff.Seconds())/sumOff.Seconds())
	}

	// Save and restore the VM with the display, then use every part of it.
	ctx := context.Background()
	before := on.screen(t)
	state := filepath.Join(on.dir, "state")
	on.qmp(t, func(q *QMP) error {
		if err := q.Execute(ctx, "stop", nil, nil); err != nil {
			return err
		}
		return q.Execute(ctx, "migrate", map[string]any{"uri": "exec:cat > " + state}, nil)
	})
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var st struct {
			Status string `json:"status"`
		}
		on.qmp(t, func(q *QMP) error { return q.Execute(ctx, "query-migrate", nil, &st) })
		if st.Status == "completed" {
			break
		}
		if st.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("save: migration %s (a device blocks it? see %s)", st.Status, on.log)
		}
	}
	fi, _ := os.Stat(state)
	on.quit(t)
	t0 := time.Now()
	on.start(t, "-incoming", "exec:cat "+state)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var status string
		on.qmp(t, func(q *QMP) (err error) { status, err = q.QueryStatus(ctx); return })
		if status == "paused" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore: status %q", status)
		}
	}
	on.qmp(t, func(q *QMP) error { return q.Execute(ctx, "cont", nil, nil) })
	t.Logf("MEASURE save %d MB, restore to running %s", fi.Size()>>20, time.Since(t0).Round(10*time.Millisecond))

	if diff := imageDiff(before, on.screen(t)); diff > 0.01 {
		t.Errorf("the screen after the restore differs from before it in %.1f%% of its pixels", 100*diff)
	}
	c, err := net.DialTimeout("unix", on.p.vnc, 5*time.Second)
	if err != nil {
		t.Fatalf("VNC after the restore: %v", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	greet := make([]byte, 12)
	if _, err := c.Read(greet); err != nil || !strings.HasPrefix(string(greet), "RFB ") {
		t.Errorf("VNC greeting after the restore: %q, %v", greet, err)
	}
	c.Close()
	// Enter on the serial socket: the guest's getty answers with a new prompt.
	n := strings.Count(readFile(on.p.serial), "login: ")
	s, err := net.DialTimeout("unix", on.p.serialSock, 5*time.Second)
	if err != nil {
		t.Fatalf("serial socket after the restore: %v", err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := s.Read(buf); err != nil {
				return
			}
		}
	}()
	s.Write([]byte("\r"))
	on.waitSerial(t, "login: ", n, time.Minute)
	s.Close()
	on.quit(t)
}

// guest is a QEMU run straight from BuildArgs.
type guest struct {
	dir, log string
	p        paths
	args     []string
	qemu     string
	cmd      *exec.Cmd
}

func newGuest(t *testing.T, qemuPath string, fw Firmware, base string, display bool) *guest {
	dir, err := os.MkdirTemp("", "fd") // short: socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	j := func(n string) string { return filepath.Join(dir, n) }
	g := &guest{dir: dir, log: j(LogFile), qemu: qemuPath, p: paths{dir: dir, disk: j(DiskFile), vars: j("vars.fd"), pid: j(PIDFile),
		qmp: j(QMPSocket), serial: j("serial.log"), vnc: j(VNCSocket), serialSock: j(SerialSocket)}}
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, g.p.disk)
	vars, err := os.ReadFile(fw.Vars)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(g.p.vars, vars, 0o600)
	port, _ := driver.FreeLoopbackPort()
	g.args = BuildArgs(Config{Name: "display-e2e", Arch: vm.AMD64, Accel: AccelTCG, CPUs: 2, MemoryMiB: 1024,
		Firmware: fw, VarsFile: g.p.vars, Disk: g.p.disk, SSHPort: port, SerialLog: g.p.serial,
		SerialSocket: g.p.serialSock, QMPSocket: g.p.qmp, PIDFile: g.p.pid, Display: display, VNCSocket: g.p.vnc})
	return g
}

func (g *guest) start(t *testing.T, extra ...string) {
	t.Helper()
	logf, _ := os.Create(g.log)
	g.cmd = exec.Command(g.qemu, append(append([]string{}, g.args...), extra...)...)
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() { g.cmd.Process.Kill() })
	for i := 0; ; i++ {
		if err := qmpDo(context.Background(), g.p.qmp, func(q *QMP) error { _, err := q.QueryStatus(context.Background()); return err }); err == nil {
			return
		}
		if i > 300 {
			t.Fatalf("QMP did not answer: %s", readFile(g.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (g *guest) qmp(t *testing.T, f func(*QMP) error) {
	t.Helper()
	if err := qmpDo(context.Background(), g.p.qmp, f); err != nil {
		t.Fatalf("qmp: %v (%s)", err, readFile(g.log))
	}
}

func (g *guest) quit(t *testing.T) {
	g.qmp(t, func(q *QMP) error { return q.Quit(context.Background()) })
	g.cmd.Wait()
	for _, s := range g.p.sockets() {
		os.Remove(s)
	}
}

// waitSerial waits until the serial log holds more than n times s.
func (g *guest) waitSerial(t *testing.T, s string, n int, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); strings.Count(readFile(g.p.serial), s) <= n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the serial console after %s:\n%s", s, d, tailOf(readFile(g.p.serial)))
		}
	}
}

func (g *guest) screen(t *testing.T) image.Image {
	t.Helper()
	m := &Machine{name: "display-e2e", p: g.p, end: proc.NewEnding()}
	img, err := m.Screenshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func imageDiff(a, b image.Image) float64 {
	if a.Bounds() != b.Bounds() {
		return 1
	}
	r, n := a.Bounds(), 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				n++
			}
		}
	}
	return float64(n) / float64(r.Dx()*r.Dy())
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }

func tailOf(s string) string {
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return fmt.Sprint(s)
}
