package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/vm"
)

func TestBuiltinCatalogResolve(t *testing.T) {
	c := Builtin()
	cases := []struct {
		ref     string
		arch    vm.Arch
		ref2    string // canonical
		upArch  string
		codenam string
	}{
		{"debian", vm.AMD64, "debian:13", "amd64", "trixie"},
		{"debian:12", vm.ARM64, "debian:12", "arm64", "bookworm"},
		{"Debian:Bookworm", vm.AMD64, "debian:12", "amd64", "bookworm"},
		{"debian:latest", vm.AMD64, "debian:13", "amd64", "trixie"},
		{"ubuntu", vm.ARM64, "ubuntu:26.04", "arm64", "resolute"},
		{"ubuntu:24.04", vm.AMD64, "ubuntu:24.04", "amd64", "noble"},
		{"ubuntu:noble", vm.AMD64, "ubuntu:24.04", "amd64", "noble"},
		{"ubuntu:jammy", vm.ARM64, "ubuntu:22.04", "arm64", "jammy"},
		{"fedora", vm.ARM64, "fedora:44", "aarch64", ""},
		{"arch", vm.AMD64, "arch:rolling", "x86_64", ""},
		{"archlinux", vm.AMD64, "arch:rolling", "x86_64", ""},
		{"alpine", vm.ARM64, "alpine:latest-stable", "aarch64", ""},
		{"alpine:3.22", vm.AMD64, "alpine:3.22", "x86_64", ""},
	}
	for _, c2 := range cases {
		e, err := c.Resolve(c2.ref, c2.arch)
		if err != nil {
			t.Errorf("%s: %v", c2.ref, err)
			continue
		}
		if e.Ref() != c2.ref2 || e.UpstreamArch != c2.upArch || e.Codename != c2.codenam || e.Arch != c2.arch {
			t.Errorf("%s: got %+v", c2.ref, e)
		}
	}
	for _, bad := range []struct{ ref, want string }{
		{"gentoo", "known images are alpine, arch, debian, fedora, ubuntu"},
		{"debian:11", "13 (trixie), 12 (bookworm)"},
	} {
		_, err := c.Resolve(bad.ref, vm.AMD64)
		if !errors.Is(err, ErrUnknownImage) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v", bad.ref, err)
		}
	}
	if _, err := c.Resolve("arch", vm.ARM64); err == nil || !strings.Contains(err.Error(), "no arm64 image") {
		t.Errorf("arch arm64: %v", err)
	}
}

func TestCatalogListAndMerge(t *testing.T) {
	c := Builtin()
	defaults := map[string]string{}
	for _, it := range c.List() {
		if it.Default {
			defaults[it.Distro] = it.Version
		}
	}
	if len(defaults) != 5 || defaults["debian"] != "13" || defaults["ubuntu"] != "26.04" {
		t.Fatalf("defaults %v", defaults)
	}
	// What the config file adds (viper decodes it into a Catalog); validated once merged.
	extra := &Catalog{Distros: []Distro{
		{Name: "debian", Mirror: "http://127.0.0.1:9/debian", Releases: []Release{{Version: "14", Codename: "forky", Default: true,
			Dir: "forky/latest", File: "debian-14-genericcloud-{arch}.qcow2", Checksums: "SHA512SUMS"}}},
		{Name: "rocky", Mirror: "https://dl.rockylinux.org/pub/rocky", Arch: map[string]string{"amd64": "x86_64"},
			Releases: []Release{{Version: "10", Dir: "10/images/{arch}", File: "Rocky-10-GenericCloud-Base.latest.{arch}.qcow2", Checksums: "{file}.CHECKSUM"}}},
	}}
	if err := c.Merge(extra); err != nil {
		t.Fatal(err)
	}
	e, err := c.Resolve("debian", vm.ARM64)
	if err != nil || e.Ref() != "debian:14" || e.Mirror != "http://127.0.0.1:9/debian" {
		t.Fatalf("merged default: %+v %v", e, err)
	}
	if e, err := c.Resolve("debian:bookworm", vm.AMD64); err != nil || e.Version != "12" {
		t.Fatalf("old release kept: %+v %v", e, err)
	}
	if e, err := c.Resolve("rocky", vm.AMD64); err != nil || e.UpstreamArch != "x86_64" {
		t.Fatalf("new distro: %+v %v", e, err)
	}
	bad := &Catalog{Distros: []Distro{{Name: "debian", Releases: []Release{{Version: "15", Dir: "x", File: "{nope}", Checksums: "S"}}}}}
	if err := Builtin().Merge(bad); err == nil || !strings.Contains(err.Error(), "{nope}") {
		t.Fatalf("bad template: %v", err)
	}
}

func TestCatalogMirrors(t *testing.T) {
	c := Builtin()
	if err := c.SetMirrors(map[string]string{"debian": "http://127.0.0.1:8080/debian/", "ubuntu": ""}); err != nil {
		t.Fatal(err)
	}
	e, _ := c.Resolve("debian", vm.AMD64)
	if e.Mirror != "http://127.0.0.1:8080/debian" {
		t.Fatalf("mirror %q", e.Mirror)
	}
	e, _ = c.Resolve("ubuntu", vm.AMD64)
	if e.Mirror != "https://cloud-images.ubuntu.com" {
		t.Fatalf("empty override applied: %q", e.Mirror)
	}
	if err := c.SetMirrors(map[string]string{"debain": "http://x"}); err == nil || !strings.Contains(err.Error(), "images.debain.mirror") {
		t.Fatalf("typo: %v", err)
	}
	if err := c.SetMirrors(map[string]string{"debian": "ftp://x"}); err == nil {
		t.Fatal("ftp mirror accepted")
	}
	if got := MirrorEnv("debian"); got != "FVM_IMAGES_DEBIAN_MIRROR" {
		t.Fatal(got)
	}
}
