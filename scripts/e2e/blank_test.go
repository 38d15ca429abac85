//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestBlankThenISO: `fvm create --name X` with no image and no ISO makes a
// blank VM; started, its firmware says on the serial console that there is
// nothing to boot; `fvm start X --iso FILE` attaches the test installer,
// which installs onto the blank disk, after which the disk boots (the
// installer ran once, though the ISO stays attached).
func TestBlankThenISO(t *testing.T) {
	t.Parallel() // beside TestPull, like TestISO
	needTools(t)
	iso := buildInstallerISO(t)
	const name = "blank1"
	r := fvm(t, "create", "--name", name, "--disk", "4", "--memory", "1G", "--cpus", installerCPUs)
	if r.code != 0 || strings.TrimSpace(r.stdout) != name || !strings.Contains(r.stderr, "fvm start "+name+" --iso FILE") {
		t.Fatalf("create --name: %+v", r)
	}
	defer fvm(t, "rm", "-f", name)
	v := inspectVM(t, name)
	if !v.Spec.Blank || v.Spec.Image != "" || v.Spec.ISO != "" || v.Backend != "qemu" || v.Spec.DiskBytes != 4<<30 {
		t.Fatalf("blank VM: %+v (backend %s)", v.Spec, v.Backend)
	}
	if ps := mustFVM(t, "ps", "-a"); !strings.Contains(ps, "(blank)") {
		t.Errorf("ps does not show the VM as blank:\n%s", ps)
	}
	t0 := time.Now()
	r = fvm(t, "start", name)
	if r.code != 0 || !strings.Contains(r.stderr, "has nothing to boot") || !strings.Contains(r.stderr, "--iso FILE") {
		t.Fatalf("start of a blank VM: %+v", r)
	}
	// The firmware tries the blank disk and whatever else it has, then says so.
	var log string
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		if log = serialLog(name); firmwareFoundNothing(log) {
			break
		}
	}
	t.Logf("MEASURE blank VM: start to the firmware's 'nothing to boot': %s", time.Since(t0))
	if !firmwareFoundNothing(log) {
		t.Fatalf("the firmware never said it found nothing to boot; serial log:\n%s", tail(log))
	}
	for _, l := range strings.Split(log, "\n") {
		if firmwareFoundNothing(l) {
			t.Logf("firmware: %s", strings.TrimSpace(l))
		}
	}
	mustFVM(t, "stop", "-f", name)

	// The installer, attached now: it installs, the disk boots, then powers off.
	t0 = time.Now()
	r = fvm(t, "start", name, "--iso", iso)
	if r.code != 0 || !strings.Contains(r.stderr, "installer running") {
		t.Fatalf("start --iso: %+v", r)
	}
	if v := inspectVM(t, name); v.Spec.ISO != iso || v.Spec.Blank {
		t.Errorf("after start --iso the spec is %+v", v.Spec)
	}
	waitStopped(t, name, 10*time.Minute)
	t.Logf("MEASURE blank VM: start --iso to the installed disk's boot: %s", time.Since(t0))
	log = serialLog(name)
	if n := strings.Count(log, installerBanner); n != 1 || !strings.Contains(log, installedMark) {
		t.Fatalf("installer ran %d times (want once); serial log:\n%s", n, tail(log))
	}
	if n := strings.Count(log, diskBootMark); n != 1 {
		t.Fatalf("the installed disk booted %d times, want once; serial log:\n%s", n, tail(log))
	}

	// A VM with an image boots its image: --iso is refused in one line, the VM unchanged.
	ensureImage(t)
	mustFVM(t, "create", "debian-local", "imgiso", "--cold")
	defer fvm(t, "rm", "-f", "imgiso")
	r = fvm(t, "start", "imgiso", "--iso", iso)
	if msg := strings.TrimSpace(r.stderr); r.code == 0 || strings.Count(msg, "\n") > 0 || !strings.Contains(msg, "boots its image") {
		t.Errorf("start --iso of a VM with an image: %d %q", r.code, msg)
	}
	if v := inspectVM(t, "imgiso"); v.Spec.ISO != "" || v.State != "stopped" {
		t.Errorf("the refused --iso changed the VM: %+v %s", v.Spec, v.State)
	}
}

// firmwareFoundNothing reports whether OVMF's output says the blank disk has
// nothing to boot: Debian's OVMF says it failed to load the disk's boot option
// ("Not Found") and goes on to its UEFI shell; a build without the shell says
// no bootable option or device was found.
func firmwareFoundNothing(s string) bool {
	l := strings.ToLower(s)
	return strings.Contains(l, "no bootable option") || strings.Contains(l, "no bootable device") ||
		strings.Contains(l, "bdsdxe: failed to load boot") && strings.Contains(l, "not found")
}
