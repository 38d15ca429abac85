//go:build linux

package debianbuild

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestBuildReal builds the real image (a few minutes, needs Debian's mirror):
//
//	FVM_TEST_IMAGE_BUILD=1 FVM_HOME=/tmp/fvm-build-test go test -run TestBuildReal -v -timeout 30m ./core/image/debianbuild
func TestBuildReal(t *testing.T) {
	if os.Getenv("FVM_TEST_IMAGE_BUILD") == "" {
		t.Skip("set FVM_TEST_IMAGE_BUILD=1 (and FVM_HOME) to build the real image")
	}
	layout := store.DefaultLayout()
	ctx := context.Background()
	img, err := Build(ctx, Options{Layout: layout, Log: testLog{t}, Force: os.Getenv("FVM_TEST_IMAGE_FORCE") != ""})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image: %+v", img)
	if img.Name != DefaultName || img.Version != "12" || img.Format != "qcow2" || !strings.HasPrefix(img.Source, SourcePrefix) {
		t.Errorf("unexpected image %+v", img)
	}
	start := time.Now()
	again, err := Build(ctx, Options{Layout: layout, Log: testLog{t}})
	if err != nil || again.Digest != img.Digest || time.Since(start) > 5*time.Second {
		t.Errorf("second build was not skipped: %+v, %v after %s", again, err, time.Since(start))
	}
	if got, err := (image.Registry{Layout: layout}).Get(DefaultName); err != nil || got.Path != img.Path {
		t.Errorf("registry entry = %+v, %v", got, err)
	}
	ents, _ := os.ReadDir(layout.BuildDir())
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), "debs-") {
			t.Errorf("work directory %s left behind", filepath.Join(layout.BuildDir(), e.Name()))
		}
	}
}

func TestStaleWorkDirs(t *testing.T) {
	d := t.TempDir()
	for _, n := range []string{"debian-local.work-123", "debian-local.work-9", "debian.work-5", "debian-local.work-1.work-7",
		"debian-local.work-x", "debian-local.log", debCacheDir("trixie", "amd64")} {
		os.Mkdir(filepath.Join(d, n), 0o755)
	}
	got := staleWorkDirs(d, "debian-local")
	want := []string{filepath.Join(d, "debian-local.work-123"), filepath.Join(d, "debian-local.work-9")}
	if !slices.Equal(got, want) {
		t.Errorf("staleWorkDirs = %q, want %q", got, want)
	}
	if got := staleWorkDirs(d, "debian"); len(got) != 1 || filepath.Base(got[0]) != "debian.work-5" {
		t.Errorf("staleWorkDirs(debian) = %q", got)
	}
}

func TestMountsUnderUnescapes(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b/proc`); got != "/tmp/a b/proc" {
		t.Errorf("unescapeMount = %q", got)
	}
	if m := mountsUnder(t.TempDir()); len(m) != 0 {
		t.Errorf("fresh temp dir has mounts %q", m)
	}
	if m := mountsUnder("/"); len(m) == 0 {
		t.Skip("no /proc/self/mountinfo")
	}
}

// An image built from the same inputs is returned without running any tool.
func TestBuildSkipsWhenUpToDate(t *testing.T) {
	d := t.TempDir()
	layout := store.HomeLayout(d)
	sources := filepath.Join(d, "debian.sources")
	os.WriteFile(sources, []byte("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n"), 0o644)
	src, _ := os.ReadFile(sources)
	base := filepath.Join(d, "base.qcow2")
	os.WriteFile(base, []byte("qcow2"), 0o444)
	reg := image.Registry{Layout: layout}
	in := recipeInput{Release: releases[0], Arch: arches[vm.AMD64], Extra: []string{"jq"}, Sources: src, RootSize: defaultRootSize}
	if runtime.GOARCH == "arm64" {
		in.Arch = arches[vm.ARM64]
	}
	want := api.Image{Name: "deb", Path: base, Digest: "sha256:ab", Source: SourcePrefix + newRecipe(in).key()}
	if err := reg.Add(want); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	got, err := Build(context.Background(), Options{Layout: layout, Name: "deb", Release: "12", Packages: []string{"jq"}, Sources: sources, Log: &log})
	if err != nil || got.Digest != want.Digest {
		t.Fatalf("Build = %+v, %v; want the registered image", got, err)
	}
	if !strings.Contains(log.String(), "up to date") {
		t.Errorf("log = %q", log.String())
	}
	for _, bad := range []Options{{Name: "Bad Name"}, {Release: "11"}, {Arch: "riscv64"}, {Packages: []string{"Bad"}}} {
		bad.Layout = layout
		if _, err := Build(context.Background(), bad); err == nil {
			t.Errorf("Build accepted %+v", bad)
		}
	}
	if ents, _ := os.ReadDir(layout.BuildDir()); len(ents) > 1 { // the lock of "deb" at most
		t.Errorf("refused builds left files: %v", ents)
	}
}

// A build by a user who is not root hands mmdebstrap a temp dir its user
// namespace can reach (the work dir is inside the private cache dir).
func TestToolTempDir(t *testing.T) {
	work := "/home/me/.cache/fvm/build/x.work-1"
	for _, c := range []struct {
		tool string
		euid int
		want string
	}{{"mmdebstrap", 1000, "/tmp"}, {"mmdebstrap", 0, work}, {"mkfs.ext4", 1000, work}} {
		if got := toolTempDir(c.tool, c.euid, work); got != c.want {
			t.Errorf("%s as %d: %s, want %s", c.tool, c.euid, got, c.want)
		}
	}
}
