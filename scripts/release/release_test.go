package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/resources"
)

// TestTarGzIsReproducible: the same files make the same archive bytes (the
// published sums can be checked by building again), and it reads back.
func TestTarGzIsReproducible(t *testing.T) {
	dir := t.TempDir()
	files := []tarFile{{"fvm-1.2.3-linux-amd64/fvm", 0o755, []byte("binary")}, {"fvm-1.2.3-linux-amd64/README.md", 0o644, []byte("# fvm\n")}}
	a, b := filepath.Join(dir, "a.tar.gz"), filepath.Join(dir, "b.tar.gz")
	if err := writeTarGz(a, files); err != nil {
		t.Fatal(err)
	}
	if err := writeTarGz(b, files); err != nil {
		t.Fatal(err)
	}
	sa, _ := fileSHA256(a)
	sb, _ := fileSHA256(b)
	if sa != sb || len(sa) != 64 {
		t.Errorf("two builds of one archive differ: %s %s", sa, sb)
	}
	got, err := readTarGz(a)
	if err != nil || string(got["fvm-1.2.3-linux-amd64/fvm"]) != "binary" {
		t.Fatalf("read back: %v %q", err, got)
	}
	sums, err := writeSums(filepath.Join(dir, "SHA256SUMS"), dir, []string{"a.tar.gz"})
	if err != nil {
		t.Fatal(err)
	}
	back, err := readSums(filepath.Join(dir, "SHA256SUMS"))
	if err != nil || back["a.tar.gz"] != sums["a.tar.gz"] || sums["a.tar.gz"] != sa {
		t.Errorf("sums %v, read back %v %v", sums, back, err)
	}
}

// TestHomebrewRendersAndParses: the formula and the cask, as checked in and
// as rendered with a release's sums, are valid Ruby (ruby -c), and the
// rendered ones name exactly those sums.
func TestHomebrewRendersAndParses(t *testing.T) {
	f := brewFields{Tag: "v1.2.3", Version: "1.2.3", SourceSHA256: strings.Repeat("a", 64),
		AppSHA256: map[string]string{"arm64": strings.Repeat("b", 64), "amd64": strings.Repeat("c", 64)}}
	dir := t.TempDir()
	for _, name := range []string{formulaFile, caskFile} {
		raw, err := resources.Homebrew.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out, err := render(name, f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "{{") {
			t.Errorf("%s: a field is left unrendered:\n%s", name, out)
		}
		for _, want := range []string{`version "1.2.3"`, "releases/download/v1.2.3/"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s lacks %s", name, want)
			}
		}
		rendered := filepath.Join(dir, filepath.Base(name))
		os.WriteFile(rendered, out, 0o644)
		template := filepath.Join(dir, "template-"+filepath.Base(name))
		os.WriteFile(template, raw, 0o644)
		for _, p := range []string{template, rendered} {
			if err := rubySyntax(context.Background(), p); errors.Is(err, exec.ErrNotFound) {
				t.Skip("no ruby here: scripts/setup.sh installs it")
			} else if err != nil {
				t.Error(err)
			}
		}
	}
	formula, _ := render(formulaFile, f)
	if !strings.Contains(string(formula), `sha256 "`+f.SourceSHA256+`"`) || !strings.Contains(string(formula), "fvm-1.2.3-src.tar.gz") {
		t.Errorf("formula:\n%s", formula)
	}
	cask, _ := render(caskFile, f)
	for _, arch := range []string{"arm64", "amd64"} {
		if !strings.Contains(string(cask), `sha256 "`+f.AppSHA256[arch]+`"`) || !strings.Contains(string(cask), "darwin-"+arch+".zip") {
			t.Errorf("cask lacks the %s app:\n%s", arch, cask)
		}
	}
	if _, err := render(caskFile, brewFields{Tag: "v1", Version: "1"}); err == nil {
		t.Error("a cask without the apps' sums rendered")
	}
}

// TestQuickstartPerOS: `make quickstart` reaches a shell from what each OS
// can do: Linux builds a Debian image (fvm image build is Linux's) and boots
// it; macOS builds the signed app and boots the catalog's Debian from it.
func TestQuickstartPerOS(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	recipe := func(goos string) string {
		cmd := exec.Command("make", "-n", "quickstart", "QUICKSTART_OS="+goos)
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n quickstart (%s): %v: %s", goos, err, out)
		}
		return string(out)
	}
	mac := recipe("Darwin")
	if !strings.Contains(mac, "bin/fvm.app/Contents/MacOS/fvm run debian\n") || strings.Contains(mac, "image build") || !strings.Contains(mac, "build-app.sh build") {
		t.Errorf("macOS quickstart:\n%s", mac)
	}
	linux := recipe("Linux")
	if !strings.Contains(linux, "bin/fvm image build debian\n") || !strings.Contains(linux, "bin/fvm run debian-local\n") || strings.Contains(linux, "build-app.sh") {
		t.Errorf("Linux quickstart:\n%s", linux)
	}
}
