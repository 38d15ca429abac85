package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeModule lays out a throwaway module; files maps relative paths to contents.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func check(t *testing.T, dir string) []problem {
	t.Helper()
	return checkWith(t, options{Dir: dir, Arches: []string{"arm64", "amd64"}})
}

func checkWith(t *testing.T, opt options) []problem {
	t.Helper()
	t.Setenv("GOWORK", "off")
	problems, err := run(context.Background(), opt)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return problems
}

const plainGoMod = "module example.com/planted\n\ngo 1.22\n"

// cgoDarwin proves cgo files are selected and pass with FakeImportC.
const cgoDarwin = `package planted

/*
#include <unistd.h>
static int answer(void) { return 42; }
*/
import "C"

func Answer() int { return int(C.answer()) + int(C.getpid()*0) }
`

// linuxOnly has an error that a darwin check must not see.
const linuxOnly = `package planted

var notDarwin int = "only compiled on linux"
`

func TestCleanDarwinModulePasses(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"go.mod":         plainGoMod,
		"common.go":      "package planted\n\nfunc Common() string { return \"x\" }\n",
		"host_darwin.go": "package planted\n\nimport \"strings\"\n\nfunc Host() string { return strings.ToUpper(Common()) }\n",
		"cgo_darwin.go":  cgoDarwin,
		"host_linux.go":  linuxOnly,
	})
	if problems := check(t, dir); len(problems) != 0 {
		t.Fatalf("clean module: want no problems, got %q", problems)
	}
}

func TestPlantedDarwinErrorFails(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"go.mod":    plainGoMod,
		"common.go": "package planted\n\nfunc Common() string { return \"x\" }\n",
		// Line 5, column 26: an int where Common returns a string.
		"host_darwin.go": "package planted\n\nimport \"strings\"\n\nfunc Host() int { return strings.ToUpper(Common()) }\n",
		"cgo_darwin.go":  cgoDarwin,
		"host_linux.go":  linuxOnly,
		// Only arm64 sees this one.
		"sub/arm_darwin_arm64.go": "package sub\n\nvar X = undefinedThing\n",
	})
	problems := check(t, dir)
	var lines []string
	for _, p := range problems {
		lines = append(lines, p.String())
	}
	want := []string{
		"host_darwin.go:5:26: cannot use strings.ToUpper(Common()) (value of type string) as int value in return statement [darwin/arm64,darwin/amd64]",
		filepath.Join("sub", "arm_darwin_arm64.go") + ":3:9: undefined: undefinedThing [darwin/arm64]",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestGoListErrorsAreReported(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"go.mod":      plainGoMod,
		"a_darwin.go": "package planted\n\nimport _ \"example.com/planted/missing\"\n",
		// Excluded on darwin: a wildcard pattern skips it without an error.
		"b/b_linux.go": "package b\n",
	})
	problems := check(t, dir)
	// One problem per arch-set: the import failure is not repeated by go/types.
	if len(problems) != 1 || !strings.HasPrefix(problems[0].String(), "a_darwin.go:3:8: no required module provides package example.com/planted/missing") {
		t.Fatalf("want the missing import reported once, got %q", problems)
	}
}

func TestTestFilesOnlyWithTestFlag(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"go.mod":              plainGoMod,
		"common.go":           "package planted\n\nfunc Common() string { return \"x\" }\n",
		"host_darwin_test.go": "package planted\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) { var n int = Common(); _ = n }\n",
		"ext_test.go":         "package planted_test\n\nimport \"example.com/planted\"\n\nvar _ = planted.Common\n",
	})
	opt := options{Dir: dir, Arches: []string{"arm64"}}
	if problems := checkWith(t, opt); len(problems) != 0 {
		t.Fatalf("without -test: want no problems, got %q", problems)
	}
	opt.Tests = true
	problems := checkWith(t, opt)
	want := "host_darwin_test.go:5:40: cannot use Common() (value of type string) as int value in variable declaration [darwin/arm64]"
	if len(problems) != 1 || problems[0].String() != want {
		t.Fatalf("with -test: got %q, want %q", problems, want)
	}
}

// vz is a large cgo (Objective-C) package: the checker must handle it, and
// catch a wrong call into it. Needs the module proxy or a warm module cache.
const vzGoMod = `module example.com/vzcheck

go 1.22.0

require github.com/Code-Hex/vz/v3 v3.7.1

require (
	github.com/Code-Hex/go-infinity-channel v1.0.0 // indirect
	golang.org/x/mod v0.22.0 // indirect
)
`

const vzGoSum = `github.com/Code-Hex/go-infinity-channel v1.0.0 h1:M8BWlfDOxq9or9yvF9+YkceoTkDI1pFAqvnP87Zh0Nw=
github.com/Code-Hex/go-infinity-channel v1.0.0/go.mod h1:5yUVg/Fqao9dAjcpzoQ33WwfdMWmISOrQloDRn3bsvY=
github.com/Code-Hex/vz/v3 v3.7.1 h1:EN1yNiyrbPq+dl388nne2NySo8I94EnPppvqypA65XM=
github.com/Code-Hex/vz/v3 v3.7.1/go.mod h1:1LsW0jqW0r0cQ+IeR4hHbjdqOtSidNCVMWhStMHGho8=
golang.org/x/mod v0.22.0 h1:D4nJWe9zXqHOmWqj4VMOJhvzj7bEZg4wEYa759z1pH4=
golang.org/x/mod v0.22.0/go.mod h1:6SkKJ3Xj0I0BrPOZoBy3bdMptDDU9oJrpohJ3eWZ1fY=
`

const vzSource = `package vzcheck

import "github.com/Code-Hex/vz/v3"

func Config() (*vz.VirtualMachineConfiguration, error) {
	boot, err := vz.NewLinuxBootLoader("/vmlinuz")
	if err != nil {
		return nil, err
	}
	return vz.NewVirtualMachineConfiguration(boot, CPUS, 1<<30)
}
`

func TestVzModule(t *testing.T) {
	dir := writeModule(t, map[string]string{
		"go.mod":                 vzGoMod,
		"go.sum":                 vzGoSum,
		"clean/vm_darwin.go":     strings.Replace(vzSource, "CPUS", "2", 1),
		"clean/doc_linux.go":     "package vzcheck\n",
		"planted/vm_darwin.go":   strings.Replace(vzSource, "CPUS", `"2"`, 1),
		"planted/doc_windows.go": "package vzcheck\n",
	})
	download := exec.Command("go", "mod", "download")
	download.Dir = dir
	download.Env = append(os.Environ(), "GOWORK=off")
	if out, err := download.CombinedOutput(); err != nil {
		t.Fatalf("go mod download for the vz test module (needs the Go module proxy or a warm cache): %v\n%s", err, out)
	}
	var lines []string
	for _, p := range check(t, dir) {
		lines = append(lines, p.String())
	}
	want := []string{filepath.Join("planted", "vm_darwin.go") +
		`:10:49: cannot use "2" (untyped string constant) as uint value in argument to vz.NewVirtualMachineConfiguration [darwin/arm64,darwin/amd64]`}
	if !slices.Equal(lines, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
