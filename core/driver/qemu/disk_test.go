package qemu

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

func needQEMUImg(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils)")
	}
	return p
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fakeFirmware makes a directory with firmware files under Debian's names.
func fakeFirmware(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "OVMF_CODE_4M.fd"), []byte("code"), 0o644)
	os.WriteFile(filepath.Join(dir, "OVMF_VARS_4M.fd"), []byte("vars-template"), 0o644)
	return dir
}

func newInstance(t *testing.T, base string, disk int64) *store.Instance {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vm")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &store.Instance{Dir: dir, Spec: vm.Spec{
		Name: "web1", Image: "test", BaseImage: base, Arch: vm.AMD64, CPUs: 1, MemoryMiB: 256,
		DiskBytes: disk, User: "fvm", Accel: "tcg",
	}}
}

func testDriver(t *testing.T) *Driver {
	return New(Options{FirmwareDirs: []string{fakeFirmware(t)}})
}

type imgInfo struct {
	VirtualSize   int64  `json:"virtual-size"`
	Format        string `json:"format"`
	BackingFile   string `json:"backing-filename"`
	BackingFormat string `json:"backing-filename-format"`
	ActualSize    int64  `json:"actual-size"`
}

func info(t *testing.T, path string) imgInfo {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var i imgInfo
	if err := json.Unmarshal(out, &i); err != nil {
		t.Fatal(err)
	}
	return i
}

func TestCreateOverlay(t *testing.T) {
	needQEMUImg(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		base int64
	}{{"2GiB base", 2 << 30}, {"20GiB base", 20 << 30}} {
		t.Run(tc.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "base.qcow2")
			qemuImg(t, "create", "-q", "-f", "qcow2", base, itoa(tc.base))
			inst := newInstance(t, base, 40<<30)
			start := time.Now()
			if err := testDriver(t).Create(ctx, inst, driver.CreateInput{Base: baseOf(t, inst)}); err != nil {
				t.Fatal(err)
			}
			t.Logf("create on a %s base took %s", vm.FormatSize(tc.base), time.Since(start))
			i := info(t, inst.Path(DiskFile))
			if i.Format != "qcow2" || i.VirtualSize != 40<<30 || i.BackingFile != base || i.BackingFormat != "qcow2" {
				t.Errorf("overlay = %+v", i)
			}
			vars, _ := os.ReadFile(inst.Path(store.EFIVarsFile))
			if string(vars) != "vars-template" {
				t.Errorf("vars = %q, want the template's copy", vars)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestCreateIsIdempotent(t *testing.T) {
	needQEMUImg(t)
	base := filepath.Join(t.TempDir(), "base.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", base, "1G")
	inst := newInstance(t, base, 2<<30)
	d := testDriver(t)
	if err := d.Create(context.Background(), inst, driver.CreateInput{Base: baseOf(t, inst)}); err != nil {
		t.Fatal(err)
	}
	// The guest's writes (here: a marker) and its UEFI variables must survive a second Create.
	os.WriteFile(inst.Path(store.EFIVarsFile), []byte("guest-written"), 0o600)
	st1, _ := os.Stat(inst.Path(DiskFile))
	inst.Spec.DiskBytes = 8 << 30
	if err := d.Create(context.Background(), inst, driver.CreateInput{Base: baseOf(t, inst)}); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(inst.Path(DiskFile))
	if !os.SameFile(st1, st2) || !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("second Create replaced the disk")
	}
	if b, _ := os.ReadFile(inst.Path(store.EFIVarsFile)); string(b) != "guest-written" {
		t.Errorf("second Create replaced the UEFI vars: %q", b)
	}
}

func TestCreateRawBase(t *testing.T) {
	needQEMUImg(t)
	base := filepath.Join(t.TempDir(), "base.img")
	qemuImg(t, "create", "-q", "-f", "raw", base, "1G")
	inst := newInstance(t, base, 3<<30)
	b := &driver.Base{Path: base, Format: "raw", VirtualSize: 1 << 30}
	if err := testDriver(t).Create(context.Background(), inst, driver.CreateInput{Base: b}); err != nil {
		t.Fatal(err)
	}
	if i := info(t, inst.Path(DiskFile)); i.BackingFormat != "raw" || i.VirtualSize != 3<<30 {
		t.Errorf("overlay = %+v", i)
	}
}

func TestCreateRefusesBackingFile(t *testing.T) {
	needQEMUImg(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.raw")
	os.WriteFile(secret, make([]byte, 1<<20), 0o600)
	evil := filepath.Join(dir, "evil.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, evil, "1G")
	// The host refuses it before any driver sees it (core/image is the one parser).
	if _, err := hostBase(evil); err == nil || !strings.Contains(err.Error(), "backing file") {
		t.Fatalf("err = %v, want a refusal naming the backing file", err)
	}
}

func TestCreateRefusesExternalDataFile(t *testing.T) {
	needQEMUImg(t)
	dir := t.TempDir()
	evil := filepath.Join(dir, "evil.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(dir, "data.raw"), evil, "1G")
	if _, err := hostBase(evil); err == nil || !strings.Contains(err.Error(), "external data file") {
		t.Fatalf("err = %v, want a refusal naming the external data file", err)
	}
}

func TestCreateDiskTooSmall(t *testing.T) {
	needQEMUImg(t)
	base := filepath.Join(t.TempDir(), "base.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", base, "3G")
	inst := newInstance(t, base, 2<<30)
	err := testDriver(t).Create(context.Background(), inst, driver.CreateInput{Base: baseOf(t, inst)})
	if err == nil || !strings.Contains(err.Error(), "--disk 2G is smaller than the image's 3G: use --disk 3G or more") {
		t.Fatalf("err = %v", err)
	}
}

func TestCreateMissingBase(t *testing.T) {
	needQEMUImg(t)
	base := &driver.Base{Path: "/nonexistent/base.qcow2", Format: "qcow2", VirtualSize: 1 << 30}
	err := testDriver(t).Create(context.Background(), newInstance(t, base.Path, 2<<30), driver.CreateInput{Base: base})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/base.qcow2") {
		t.Fatalf("err = %v", err)
	}
}

// hostBase checks a base file as the host does before any driver sees it.
func hostBase(path string) (*driver.Base, error) {
	info, err := image.Inspect(path)
	if err != nil {
		return nil, err
	}
	if err := image.CheckDisk(info); err != nil {
		return nil, err
	}
	return &driver.Base{Path: path, Format: string(info.Format), VirtualSize: info.VirtualSize}, nil
}

// baseOf is the resolved base of a test instance (nil for an ISO install).
func baseOf(t testing.TB, inst *store.Instance) *driver.Base {
	t.Helper()
	if inst.Spec.BaseImage == "" {
		return nil
	}
	b, err := hostBase(inst.Spec.BaseImage)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
