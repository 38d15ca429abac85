//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
)

// fullOnly skips a slow test unless the whole suite runs (`make e2e-full`).
func fullOnly(t *testing.T, cost string) {
	t.Helper()
	if os.Getenv("FVM_E2E_FULL") == "" {
		t.Skipf("slow (%s): runs with `make e2e-full` (FVM_E2E_FULL=1)", cost)
	}
}

// imageNamed is the `fvm images` entry of name.
func imageNamed(t *testing.T, name string) api.Image {
	t.Helper()
	var imgs []api.Image
	if err := json.Unmarshal([]byte(mustFVM(t, "images", "--format", "json")), &imgs); err != nil {
		t.Fatal(err)
	}
	for _, im := range imgs {
		if im.Name == name {
			return im
		}
	}
	t.Fatalf("no image %s in `fvm images`", name)
	return api.Image{}
}

// buildImage runs `fvm image build debian ARGS` and checks that an unchanged
// second run is skipped; it returns the image's name (the build's last line).
func buildImage(t *testing.T, limit time.Duration, args ...string) string {
	t.Helper()
	argv := append([]string{"image", "build", "debian"}, args...)
	t0 := time.Now()
	r := fvmTimeout(t, limit, nil, argv...)
	if r.code != 0 {
		t.Fatalf("fvm %s: %s", strings.Join(argv, " "), r.stderr)
	}
	t.Logf("MEASURE fvm %s: %s", strings.Join(argv, " "), time.Since(t0).Round(time.Second))
	name := strings.TrimSpace(r.stdout)
	t0 = time.Now()
	again := fvmTimeout(t, limit, nil, argv...)
	if again.code != 0 || strings.TrimSpace(again.stdout) != name || !strings.Contains(again.stderr, "up to date") || time.Since(t0) > 30*time.Second {
		t.Errorf("unchanged rebuild was not skipped (%s): %+v", time.Since(t0), again)
	}
	return name
}

// TestArm64Guest builds a Debian 13 arm64 image on this host (under qemu-user when
// the host is amd64), boots it (TCG: the virt machine, -cpu max with
// pauth-impdef=on, AAVMF) and checks from inside that it is an aarch64 Debian 13,
// that suspend and resume work for it, and that warm snapshots are refused with
// the reason.
func TestArm64Guest(t *testing.T) {
	fullOnly(t, "an arm64 image build under qemu-user and an arm64 boot under TCG, tens of minutes")
	want := "debian-local-arm64"
	if runtime.GOARCH == "arm64" {
		want = "debian-local"
	}
	name := buildImage(t, 90*time.Minute, "--arch", "arm64")
	if name != want {
		t.Fatalf("the arm64 image is called %q, want %q", name, want)
	}
	if im := imageNamed(t, name); im.Arch != "arm64" || im.Version != "13" {
		t.Fatalf("image %s: arch %s, version %s", name, im.Arch, im.Version)
	}

	const vmName = "arm1"
	t0 := time.Now()
	r := fvmTimeout(t, 30*time.Minute, nil, "run", "-d", name, vmName, "--memory", "2G")
	if r.code != 0 {
		t.Fatalf("run -d %s: %s\nserial log:\n%s", name, r.stderr, tailFile(filepath.Join(layout.InstanceDir(vmName), store.SerialLog)))
	}
	t.Cleanup(func() { fvm(t, "rm", "-f", vmName) })
	t.Logf("MEASURE arm64 guest on %s: run -d → SSH ready: %s", runtime.GOARCH, time.Since(t0).Round(time.Second))
	if runtime.GOARCH != "arm64" && !strings.Contains(r.stderr, "arm64 guest on an amd64 host") {
		t.Errorf("run does not say why it emulates: %s", r.stderr)
	}

	out := strings.Fields(mustFVM(t, "exec", vmName, "--", "uname -m; cut -d. -f1 /etc/debian_version; grep -c -w paca /proc/cpuinfo; hostname"))
	if len(out) != 4 || out[0] != "aarch64" || out[1] != "13" || out[3] != vmName {
		t.Fatalf("inside the arm64 VM: %q, want aarch64, Debian 13, hostname %s", out, vmName)
	}
	pid := readPID(t, vmName)
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	argv := strings.Join(strings.Split(string(cmdline), "\x00"), " ")
	for _, want := range []string{"qemu-system-aarch64", "-machine virt,gic-version=max", "-accel tcg", "AAVMF_CODE.fd", "virtserialport"} {
		if !strings.Contains(argv, want) {
			t.Errorf("qemu's command line lacks %q: %s", want, argv)
		}
	}
	if strings.Contains(argv, "-cpu max,pauth-impdef=on") {
		if out[2] == "0" {
			t.Error("-cpu max,pauth-impdef=on, yet the guest sees no pointer authentication (paca)")
		}
	} else {
		t.Logf("this QEMU has no pauth-impdef: %s", argv)
	}
	if strings.Contains(argv, "vmgenid") {
		t.Errorf("a vmgenid device on arm64: %s", argv)
	}
	t.Run("cloud-init-clean", func(t *testing.T) {
		firstBootClean(t, vmName)
	})
	t.Run("warm-refused", func(t *testing.T) {
		before, _ := os.ReadDir(layout.WarmDir())
		r := fvm(t, "image", "warm", name)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		last := lines[len(lines)-1] // after the "Making the warm snapshot" phase line
		if r.code == 0 || !strings.HasPrefix(last, "fvm: ") || !strings.Contains(last, "VM generation ID") {
			t.Fatalf("fvm image warm %s: want a one-line refusal with the reason, got %+v", name, r)
		}
		if after, _ := os.ReadDir(layout.WarmDir()); len(after) != len(before) {
			t.Errorf("the refused warm left something: %v, before %v", after, before)
		}
	})
	suspendResume(t, vmName)
}

// TestDebian12Build builds the other release with an extra package under its own
// name, boots it and checks the release and the package from inside; the default
// image (Debian 13) is left as it was.
func TestDebian12Build(t *testing.T) {
	fullOnly(t, "a Debian 12 image build and a boot, minutes")
	ensureImage(t)
	before := imageNamed(t, "debian-local")
	name := buildImage(t, 30*time.Minute, "--release", "12", "--packages", "jq,tree")
	if name != "debian-12-local" {
		t.Fatalf("the Debian 12 image is called %q", name)
	}
	im := imageNamed(t, name)
	if im.Version != "12" || im.Digest == before.Digest {
		t.Fatalf("image %s: version %s, digest %s (debian-local: %s)", name, im.Version, im.Digest, before.Digest)
	}
	if after := imageNamed(t, "debian-local"); after.Digest != before.Digest || after.Version != "13" {
		t.Errorf("building Debian 12 changed debian-local: %+v", after)
	}
	const vmName = "deb12"
	t0 := time.Now()
	mustFVM(t, "run", "-d", name, vmName, "--memory", "1G")
	t.Cleanup(func() { fvm(t, "rm", "-f", vmName) })
	t.Logf("MEASURE Debian 12 run -d → SSH ready: %s", time.Since(t0).Round(time.Second))
	out := strings.Fields(mustFVM(t, "exec", vmName, "--", `cut -d. -f1 /etc/debian_version; echo '{"a":41}' | jq .a; tree --version | cut -d' ' -f1`))
	if len(out) < 3 || out[0] != "12" || out[1] != "41" || out[2] != "tree" {
		t.Fatalf("inside the Debian 12 VM: %q", out)
	}
	firstBootClean(t, vmName)
}
