package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/vm"
)

// TestPullEveryCatalogEntry resolves, locates and fetches every release and
// architecture of the built-in catalog from a loopback mirror laid out like
// its upstream, and checks the digest of what lands on disk.
func TestPullEveryCatalogEntry(t *testing.T) {
	u := newFakeUpstream(t)
	want := u.populate()
	cat := u.catalog(t)
	ctx := context.Background()
	cache := t.TempDir()
	n := 0
	for _, item := range cat.List() {
		for _, arch := range item.Arches {
			e, err := cat.Resolve(item.Ref, arch)
			if err != nil {
				t.Fatalf("%s/%s: %v", item.Ref, arch, err)
			}
			src, err := LocateWith(ctx, nil, e, testKeys)
			if err != nil {
				t.Fatalf("%s/%s: locate: %v", item.Ref, arch, err)
			}
			w, ok := want[item.Ref+"/"+string(arch)]
			if !ok {
				t.Fatalf("%s/%s: the fake upstream has no layout for it", item.Ref, arch)
			}
			if src.URL != u.srv.URL+"/"+w.File.Path || src.Build != w.Build {
				t.Errorf("%s/%s: located %s (build %q), want /%s (build %q)", item.Ref, arch, src.URL, src.Build, w.File.Path, w.Build)
				continue
			}
			dest := filepath.Join(cache, strings.ReplaceAll(item.Ref, ":", "-")+"-"+string(arch))
			res, err := Fetch(ctx, FetchRequest{URL: src.URL, Dest: dest, Digest: src.Digest})
			if err != nil {
				t.Fatalf("%s/%s: fetch: %v", item.Ref, arch, err)
			}
			got, _ := os.ReadFile(dest)
			if !bytes.Equal(got, w.File.Bytes) || res.FileDigest.Hex != sum256(w.File.Bytes) || res.Info.Format != FormatQCOW2 {
				t.Errorf("%s/%s: fetched content or digest differs: %+v", item.Ref, arch, res)
			}
			n++
		}
	}
	if n < 15 {
		t.Fatalf("only %d entries pulled", n)
	}
}

func TestLocateFallsBackWithoutListing(t *testing.T) {
	u := newFakeUpstream(t)
	want := u.populate()
	u.noListing = true
	cat := u.catalog(t)
	e, err := cat.Resolve("debian:bookworm", vm.ARM64)
	if err != nil {
		t.Fatal(err)
	}
	src, err := LocateWith(context.Background(), nil, e, testKeys)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(src.URL, "/bookworm/latest/debian-12-genericcloud-arm64.qcow2") || src.Build != "" ||
		src.Digest.Hex != sum512(want["debian:12/arm64"].File.Bytes) {
		t.Fatalf("fallback: %+v", src)
	}
	// Arch's alias checksum names the dated file; Ubuntu's names the alias.
	for _, ref := range []string{"arch", "ubuntu:noble"} {
		e, _ := cat.Resolve(ref, vm.AMD64)
		if src, err := LocateWith(context.Background(), nil, e, testKeys); err != nil || src.Build != "" {
			t.Fatalf("%s fallback: %+v %v", ref, src, err)
		}
	}
	// Fedora and Alpine need the listing: a clear error, naming the URL.
	e, _ = cat.Resolve("fedora", vm.AMD64)
	if _, err := LocateWith(context.Background(), nil, e, testKeys); err == nil || !strings.Contains(err.Error(), "/releases/44/Cloud/x86_64/images/") {
		t.Fatalf("fedora without listing: %v", err)
	}
}

func TestCheckUpdateDebianDatedBuild(t *testing.T) {
	u := newFakeUpstream(t)
	want := u.populate()
	cat := u.catalog(t)
	e, err := cat.Resolve("debian:12", vm.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	old := fakeImage("debian-12-genericcloud-amd64-20261015-2250.qcow2", 4096)
	cached := Digest{SHA512, sum512(old)}
	a, err := CheckUpdateWith(context.Background(), nil, e, cached, "20261015-2250", testKeys)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Newer || a.Latest.Build != "20261101-2301" || !strings.Contains(a.Latest.URL, "/bookworm/20261101-2301/debian-12-genericcloud-amd64-20261101-2301.qcow2") {
		t.Fatalf("update: %+v", a)
	}
	cur := Digest{SHA512, sum512(want["debian:12/amd64"].File.Bytes)}
	if a, err := CheckUpdate(context.Background(), nil, e, cur, "20261101-2301"); err != nil || a.Newer {
		t.Fatalf("up to date: %+v %v", a, err)
	}
	// A mirror lagging behind the cache is not an update.
	if a, err := CheckUpdate(context.Background(), nil, e, cached, "20261201-0001"); err != nil || a.Newer {
		t.Fatalf("lagging mirror: %+v %v", a, err)
	}
	// Without a build id (latest alias), a changed checksum index is an update.
	u.noListing = true
	if a, err := CheckUpdate(context.Background(), nil, e, cached, ""); err != nil || !a.Newer || a.Latest.Build != "" {
		t.Fatalf("index changed: %+v %v", a, err)
	}
}

func TestParseListing(t *testing.T) {
	apache := `<html><body><table><tr><th><a href="?C=N;O=D">Name</a></th></tr>
<tr><td><a href="/images/cloud/">Parent Directory</a></td></tr>
<tr><td><a href="20250210-2019/">20250210-2019/</a></td></tr>
<tr><td><a href='daily/'>daily/</a></td></tr>
<tr><td><a HREF="nocloud_alpine-3.22.2-x86_64-uefi-cloudinit-r0.qcow2">x</a></td></tr>
<tr><td><a href="../">..</a><a href="a%20b.img">sp</a><a href="https://other.example/x/y.img">abs</a></td></tr>
<tr><td><a href="../../etc/passwd">bad</a></td></tr>
</table></body></html>`
	got := strings.Join(ParseListing([]byte(apache)), ",")
	want := "cloud/,20250210-2019/,daily/,nocloud_alpine-3.22.2-x86_64-uefi-cloudinit-r0.qcow2,a b.img,y.img,passwd"
	if got != want {
		t.Fatalf("apache listing:\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(ParseListing([]byte("v20261101.1/\nlatest/\n")), ","); got != "v20261101.1/,latest/" {
		t.Fatalf("plain listing: %s", got)
	}
}

func TestNaturalLess(t *testing.T) {
	for _, c := range [][2]string{
		{"3.22.9", "3.22.10"}, {"release-20240423", "release-20240423.1"}, {"20250210-2019", "20250301-0001"},
		{"1.6", "1.10"}, {"a", "b"}, {"007", "8"},
	} {
		if !naturalLess(c[0], c[1]) || naturalLess(c[1], c[0]) {
			t.Errorf("%s < %s failed", c[0], c[1])
		}
	}
}

func FuzzParseListing(f *testing.F) {
	f.Add([]byte(`<a href="20250210-2019/">x</a><a href="?C=M">`))
	f.Add([]byte("a/\nb\n"))
	f.Add([]byte(`<html><a href='%zz'>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range ParseListing(b) {
			if strings.Contains(strings.TrimSuffix(n, "/"), "/") || n == ".." || n == "../" || n == "" {
				t.Fatalf("unsafe name %q", n)
			}
		}
	})
}
