package vz

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/vm"
)

func testDriver(macOS string, arch vm.Arch, caps HostCaps) *Driver {
	return New(Options{MacOS: macOS, Arch: arch, Caps: &caps, HelperPath: "/nonexistent/fvm-vz"})
}

var m2Caps = HostCaps{MacOS: "14.5", Arch: vm.ARM64, Supported: true, Limits: appleSilicon, Rosetta: RosettaInstalled, SaveRestore: true}

// TestValidate: what vz refuses wraps driver.ErrUnsupported (so auto falls
// through to QEMU) and says what to do.
func TestValidate(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		d    *Driver
		edit func(*vm.Spec)
		want string // "" = accepted
	}{
		{"arm64 guest on Apple silicon", testDriver("14.5", vm.ARM64, m2Caps), func(*vm.Spec) {}, ""},
		{"rosetta", testDriver("14.5", vm.ARM64, m2Caps), func(s *vm.Spec) { s.Rosetta = true }, ""},
		{"macOS 12", testDriver("12.7", vm.ARM64, m2Caps), func(*vm.Spec) {}, "vz needs macOS 13+ (this Mac runs macOS 12.7): use --backend qemu"},
		{"ISO install", testDriver("14.5", vm.ARM64, m2Caps), func(s *vm.Spec) { s.ISO = "/x.iso" }, "vz does not boot installer ISOs"},
		{"blank VM", testDriver("14.5", vm.ARM64, m2Caps), func(s *vm.Spec) { s.Image, s.Blank = "", true }, "nor blank VMs, which wait for one): use --backend qemu"},
		{"foreign arch", testDriver("14.5", vm.ARM64, m2Caps), func(s *vm.Spec) { s.Arch = vm.AMD64 }, "vz runs arm64 guests on this Mac, not amd64: use --backend qemu"},
		{"intel mac, arm64 guest", testDriver("13.6", vm.AMD64, HostCaps{Supported: true}), func(*vm.Spec) {}, "vz runs amd64 guests on this Mac, not arm64"},
		{"no virtualization", testDriver("14.5", vm.ARM64, HostCaps{}), func(*vm.Spec) {}, "this Mac cannot run VMs"},
		{"too many CPUs", testDriver("14.5", vm.ARM64, m2Caps), func(s *vm.Spec) { s.CPUs = 64 }, "--cpus 64 is more than vz allows on this Mac (8)"},
		{"rosetta missing", testDriver("14.5", vm.ARM64, HostCaps{Supported: true, Rosetta: RosettaNotInstalled}), func(s *vm.Spec) { s.Rosetta = true }, "softwareupdate --install-rosetta"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := baseSpec()
			c.edit(s)
			err := c.d.Validate(ctx, s)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, driver.ErrUnsupported) {
				t.Fatalf("got %v, want ErrUnsupported with %q", err, c.want)
			}
		})
	}
}

func TestCaps(t *testing.T) {
	ctx := context.Background()
	spec := baseSpec()
	f := testDriver("14.5", vm.ARM64, m2Caps).Caps(ctx, spec)
	if f.Disk != driver.DiskRawClone || !f.OutlivesHost || f.Display != driver.DisplayNative || f.SerialAttach || !f.SaveState || !f.Rosetta || f.InstallISO || !f.Shares || f.WarmClone || f.Forwards != driver.ForwardSSH {
		t.Errorf("Apple silicon, macOS 14: %+v", f)
	}
	if f.LogFiles[0] != LogFile || f.MAC != GuestMAC(spec).String() {
		t.Errorf("log files %v, MAC %s", f.LogFiles, f.MAC)
	}
	oldSDK := m2Caps
	oldSDK.SaveRestore = false // a helper built with an SDK before macOS 14's, on macOS 14
	for _, d := range []*Driver{testDriver("13.6", vm.ARM64, m2Caps), testDriver("14.5", vm.AMD64, HostCaps{}), testDriver("14.5", vm.ARM64, oldSDK)} {
		if c := d.Caps(ctx, spec); c.SaveState || c.Why[driver.CapSaveState] == "" {
			t.Errorf("save state declared on macOS %s %s, or no reason: %+v", d.opts.MacOS, d.opts.Arch, c)
		}
	}
	if testDriver("14.5", vm.AMD64, HostCaps{}).Caps(ctx, spec).Rosetta {
		t.Error("Rosetta declared on an Intel Mac")
	}
	// An ISO install is refused by the host through the generic needs check.
	iso := *spec
	iso.ISO = "/x.iso"
	if err := driver.CheckNeeds("vz", &iso, f); !errors.Is(err, driver.ErrUnsupported) || !strings.Contains(err.Error(), "ISO") {
		t.Errorf("ISO on vz: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	for _, c := range []struct{ goos, version, want string }{
		{"linux", "", "vz needs macOS 13+ (Apple's Virtualization framework): use --backend qemu"},
		{"darwin", "12.7.1", "vz needs macOS 13+ (this Mac runs macOS 12.7.1): use --backend qemu"},
		{"darwin", "", "vz needs macOS 13+ (this Mac runs macOS unknown): use --backend qemu"},
		{"darwin", "13.0", ""},
		{"darwin", "15.2", ""},
	} {
		if got := Unavailable(c.goos, c.version); got != c.want {
			t.Errorf("Unavailable(%s, %q) = %q, want %q", c.goos, c.version, got, c.want)
		}
	}
}

// TestCreateAndBasesInUse: Create converts a qcow2 base once, clones the disk,
// and records both for prune; an existing disk is kept.
func TestCreateAndBasesInUse(t *testing.T) {
	if _, err := lookQemuImg(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	writeSparse(t, src, 16<<20, map[int64][]byte{510: {0x55, 0xaa}, 9 << 20: random(5000)})
	base := filepath.Join(dir, "sha256-"+strings.Repeat("12", 32)+".qcow2")
	qemuImg(t, "convert", "-q", "-f", "raw", "-O", "qcow2", src, base)
	inst := newTestInstance(t, dir, base)
	d := testDriver("14.5", vm.ARM64, m2Caps)
	if bases, err := d.BasesInUse(inst.Dir); err != nil || len(bases) != 0 {
		t.Fatalf("before Create: %v %v", bases, err)
	}
	if err := d.Create(context.Background(), inst, driver.CreateInput{Base: baseOf(t, base)}); err != nil {
		t.Fatal(err)
	}
	bases, err := d.BasesInUse(inst.Dir)
	raw := base + ".vz.raw"
	if err != nil || len(bases) != 2 || bases[0] != raw || bases[1] != base {
		t.Fatalf("BasesInUse = %v %v, want [%s %s]", bases, err, raw, base)
	}
	st, _ := os.Stat(inst.Path(DiskFile))
	if st.Size() != inst.Spec.DiskBytes {
		t.Fatalf("disk %d bytes", st.Size())
	}
	os.WriteFile(inst.Path(DiskFile), []byte("written by the guest"), 0o600)
	if err := d.Create(context.Background(), inst, driver.CreateInput{Base: baseOf(t, base)}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(inst.Path(DiskFile)); string(b) != "written by the guest" {
		t.Fatal("a second Create replaced the disk")
	}
}
