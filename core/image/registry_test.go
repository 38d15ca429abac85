package image

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

func testRegistry(t *testing.T) Registry {
	t.Helper()
	d := t.TempDir()
	return Registry{Layout: store.HomeLayout(d)}
}

func TestValidateImageName(t *testing.T) {
	for _, ok := range []string{"debian-local", "debian-12.5", "a", "u22.04", strings.Repeat("a", MaxNameLen)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v, want ok", ok, err)
		}
	}
	for _, bad := range []string{"", "Debian", "-a", "a-", ".a", "a/b", "../x", "a b", "a:b", "a_b", strings.Repeat("a", MaxNameLen+1)} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", bad)
		}
	}
}

func TestRegistryRoundTrip(t *testing.T) {
	r := testRegistry(t)
	base := filepath.Join(t.TempDir(), "base.qcow2")
	os.WriteFile(base, []byte("x"), 0o644)
	if imgs, err := r.List(); err != nil || len(imgs) != 0 {
		t.Fatalf("List on empty registry = %v, %v", imgs, err)
	}
	for _, n := range []string{"zeta", "alpha"} {
		img := api.Image{Name: n, Arch: vm.AMD64, Format: "qcow2", Path: base, Digest: "sha256:00", CreatedAt: time.Unix(1, 0).UTC()}
		if err := r.Add(img); err != nil {
			t.Fatal(err)
		}
	}
	imgs, err := r.List()
	if err != nil || len(imgs) != 2 || imgs[0].Name != "alpha" || imgs[1].Name != "zeta" {
		t.Fatalf("List = %+v, %v; want alpha, zeta", imgs, err)
	}
	got, err := r.Get("zeta")
	if err != nil || got.Path != base || got.Digest != "sha256:00" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if err := r.Remove("zeta"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("zeta"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "fvm image build debian") {
		t.Fatalf("Get after Remove = %v, want ErrNotFound with a hint", err)
	}
	if err := r.Remove("zeta"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(base); err != nil {
		t.Fatalf("Remove must keep the base disk: %v", err)
	}
	if err := r.Add(api.Image{Name: "rel", Path: "relative.qcow2"}); err == nil {
		t.Fatal("Add with a relative path succeeded")
	}
	if _, err := r.Get("../../etc/passwd"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an invalid name = %v, want ErrNotFound", err)
	}
}

func TestRegistryGetMissingBase(t *testing.T) {
	r := testRegistry(t)
	if err := r.Add(api.Image{Name: "gone", Path: "/nonexistent/base.qcow2"}); err != nil {
		t.Fatal(err)
	}
	_, err := r.Get("gone")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Get with a missing base = %v", err)
	}
}

// TestRegistryListsBrokenEntries: one damaged entry hides nothing; each broken
// entry is listed with its reason and the command that removes it.
func TestRegistryListsBrokenEntries(t *testing.T) {
	r := testRegistry(t)
	base := filepath.Join(t.TempDir(), "x.qcow2")
	os.WriteFile(base, []byte("x"), 0o644)
	for _, n := range []string{"good", "gone"} {
		if err := r.Add(api.Image{Name: n, Path: base}); err != nil {
			t.Fatal(err)
		}
	}
	r.Add(api.Image{Name: "gone", Path: "/nonexistent/x.qcow2"})
	os.WriteFile(filepath.Join(r.Layout.ImagesDir(), "bad.json"), []byte("{"), 0o644)
	os.WriteFile(filepath.Join(r.Layout.ImagesDir(), "other.json"), []byte(`{"name":"someone-else","path":"/x"}`), 0o644)
	os.WriteFile(filepath.Join(r.Layout.ImagesDir(), ".good.json.tmp-1"), []byte("{"), 0o644)
	imgs, err := r.List()
	if err != nil || len(imgs) != 4 {
		t.Fatalf("List = %+v, %v", imgs, err)
	}
	want := map[string]string{"bad": "unreadable", "gone": "base disk /nonexistent/x.qcow2 is missing", "good": "", "other": "does not describe it"}
	for _, img := range imgs {
		w, ok := want[img.Name]
		if !ok || (w == "") != (img.Broken == "") || !strings.Contains(img.Broken, w) {
			t.Errorf("%s: broken %q, want %q", img.Name, img.Broken, w)
		}
		if img.Broken != "" && !strings.Contains(img.Broken, "fvm image rm "+img.Name) {
			t.Errorf("%s: %q does not say how to remove it", img.Name, img.Broken)
		}
	}
}

// rawDisk writes a sparse-looking raw disk: data, a long run of zeros, data.
func rawDisk(t *testing.T, dir string) (string, string) {
	t.Helper()
	b := make([]byte, 3<<20+17)
	copy(b, "boot sector")
	b[510], b[511] = 0x55, 0xAA // MBR boot signature
	copy(b[len(b)-4:], "tail")
	p := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return p, "sha256:" + hex.EncodeToString(sum[:])
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp file %s left in %s", e.Name(), dir)
		}
	}
}

func TestImportFileCopyAndReuse(t *testing.T) {
	r := testRegistry(t)
	src, digest := rawDisk(t, t.TempDir())
	img, err := r.ImportFile(context.Background(), src, "one", ImportOptions{Version: "1", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(r.Layout.BasesDir(), strings.Replace(digest, ":", "-", 1)+".raw")
	if img.Digest != digest || img.Path != want || img.Format != "raw" || img.Arch != vm.AMD64 || img.Virtual != 3<<20+17 {
		t.Fatalf("ImportFile = %+v; want digest %s at %s", img, digest, want)
	}
	got, _ := os.ReadFile(img.Path)
	if sum := sha256.Sum256(got); "sha256:"+hex.EncodeToString(sum[:]) != digest {
		t.Fatal("cached copy differs from the source")
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatal("a copy import must keep the source")
	}
	img2, err := r.ImportFile(context.Background(), src, "two", ImportOptions{})
	if err != nil || img2.Path != img.Path {
		t.Fatalf("second import = %+v, %v; want the same base", img2, err)
	}
	ents, _ := os.ReadDir(r.Layout.BasesDir())
	if len(ents) != 1 {
		t.Fatalf("bases dir holds %d files, want 1", len(ents))
	}
	if e, err := r.Get("two"); err != nil || e.Digest != digest {
		t.Fatalf("Get(two) = %+v, %v", e, err)
	}
}

func TestImportFileMove(t *testing.T) {
	r := testRegistry(t)
	os.MkdirAll(r.Layout.CacheDir, 0o755)
	src, digest := rawDisk(t, r.Layout.CacheDir) // same filesystem, like a build output
	img, err := r.ImportFile(context.Background(), src, "moved", ImportOptions{Move: true})
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != digest {
		t.Fatalf("digest = %s, want %s", img.Digest, digest)
	}
	if _, err := os.Stat(src); !os.IsNotExist(err) {
		t.Fatalf("move import left the source: %v", err)
	}
	// Moving in identical content again reuses the base and drops the new file.
	src2, _ := rawDisk(t, r.Layout.CacheDir)
	img2, err := r.ImportFile(context.Background(), src2, "moved2", ImportOptions{Move: true})
	if err != nil || img2.Path != img.Path {
		t.Fatalf("second move = %+v, %v", img2, err)
	}
	if _, err := os.Stat(src2); !os.IsNotExist(err) {
		t.Fatal("duplicate move left the source")
	}
}

func TestImportFileCanceledLeavesNoTemp(t *testing.T) {
	r := testRegistry(t)
	src, _ := rawDisk(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.ImportFile(ctx, src, "c", ImportOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("ImportFile with canceled ctx = %v", err)
	}
	assertNoTemp(t, r.Layout.BasesDir())
	if _, err := r.Get("c"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a failed import registered the image")
	}
}

func TestImportFileRefusesBackingFile(t *testing.T) {
	r := testRegistry(t)
	// A qcow2 v2 header whose backing file is /etc/passwd.
	hdr := make([]byte, 512)
	copy(hdr, "QFI\xfb")
	binary.BigEndian.PutUint32(hdr[4:], 2)
	binary.BigEndian.PutUint64(hdr[8:], 200)
	binary.BigEndian.PutUint32(hdr[16:], uint32(len("/etc/passwd")))
	binary.BigEndian.PutUint64(hdr[24:], 1<<30)
	copy(hdr[200:], "/etc/passwd")
	src := filepath.Join(t.TempDir(), "evil.qcow2")
	os.WriteFile(src, hdr, 0o644)
	if _, err := r.ImportFile(context.Background(), src, "evil", ImportOptions{}); !errors.Is(err, ErrUnsafeImage) {
		t.Fatalf("ImportFile of a qcow2 with a backing file = %v, want ErrUnsafeImage", err)
	}
	assertNoTemp(t, r.Layout.BasesDir())
}
