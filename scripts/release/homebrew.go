package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/template"

	"github.com/fvmhq/fvm/resources"
)

// Where the formula and the cask go in the release, as in a tap.
const (
	formulaFile = "homebrew/Formula/fvm.rb"
	caskFile    = "homebrew/Casks/fvm-app.rb"
)

// brewFields are the templates' {{...}} fields.
type brewFields struct {
	Tag, Version string
	SourceSHA256 string
	AppSHA256    map[string]string // by arch
}

// render fills a template of resources.Homebrew.
func render(name string, f brewFields) ([]byte, error) {
	src, err := resources.Homebrew.ReadFile(name)
	if err != nil {
		return nil, err
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b.Bytes(), nil
}

// renderHomebrew writes the formula (always) and the cask (when both app
// archives are in the release, i.e. on a Mac).
func (r release) renderHomebrew(sums map[string]string) error {
	f := brewFields{Tag: r.tag, Version: r.version(), SourceSHA256: sums[sourceArchive(r.version())], AppSHA256: map[string]string{}}
	out := map[string][]byte{}
	var err error
	if out[formulaFile], err = render(formulaFile, f); err != nil {
		return err
	}
	for _, arch := range appArches {
		if s, ok := sums[appArchive(r.version(), arch)]; ok {
			f.AppSHA256[arch] = s
		}
	}
	if len(f.AppSHA256) == len(appArches) {
		if out[caskFile], err = render(caskFile, f); err != nil {
			return err
		}
	}
	for name, b := range out {
		p := r.path(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		r.note("%s", name)
	}
	return nil
}

// verify checks the release as published: every sum matches its file, this
// host's CLI archive runs `fvm version`, the formula and cask name the sums
// of SHA256SUMS, and ruby parses them.
func (r release) verify(ctx context.Context) error {
	sums, err := readSums(r.path("SHA256SUMS"))
	if err != nil {
		return err
	}
	for name, want := range sums {
		got, err := fileSHA256(r.path(name))
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s: sha256 %s, SHA256SUMS says %s", name, got, want)
		}
	}
	if err := r.runVersion(ctx); err != nil {
		return err
	}
	formula, err := os.ReadFile(r.path(formulaFile))
	if err != nil {
		return err
	}
	if want := `sha256 "` + sums[sourceArchive(r.version())] + `"`; !bytes.Contains(formula, []byte(want)) {
		return fmt.Errorf("%s does not name the source archive's sum (%s)", formulaFile, want)
	}
	checked := []string{formulaFile}
	if cask, err := os.ReadFile(r.path(caskFile)); err == nil {
		for _, arch := range appArches {
			if want := `sha256 "` + sums[appArchive(r.version(), arch)] + `"`; !bytes.Contains(cask, []byte(want)) {
				return fmt.Errorf("%s does not name the %s app's sum", caskFile, arch)
			}
		}
		checked = append(checked, caskFile)
	}
	for _, f := range checked {
		if err := rubySyntax(ctx, r.path(f)); errors.Is(err, exec.ErrNotFound) {
			r.note("ruby -c %s: skipped, no ruby here (scripts/setup.sh installs it)", f)
		} else if err != nil {
			return err
		} else {
			r.note("ruby -c %s: Syntax OK", f)
		}
	}
	r.note("checked: %d sums, fvm version from this host's archive, the sums in %s", len(sums), strings.Join(checked, " and "))
	return nil
}

// runVersion unpacks this host's CLI archive and runs `fvm version` from it.
func (r release) runVersion(ctx context.Context) error {
	t := target{runtime.GOOS, runtime.GOARCH}
	name := cliArchive(r.version(), t)
	files, err := readTarGz(r.path(name))
	if err != nil {
		return err
	}
	exe := files[strings.TrimSuffix(name, ".tar.gz")+"/fvm"]
	if len(exe) == 0 {
		return fmt.Errorf("%s holds no fvm", name)
	}
	dir, err := os.MkdirTemp("", "fvm-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "fvm")
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "version")
	cmd.Env = append(os.Environ(), "FVM_HOME="+dir) // no host needed, none touched
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), r.tag) {
		return fmt.Errorf("fvm version from %s: %v: %q, want %s", name, err, out, r.tag)
	}
	r.note("fvm version from %s: %s", name, strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
	return nil
}

// rubySyntax runs `ruby -c` on a file (exec.ErrNotFound without ruby).
func rubySyntax(ctx context.Context, path string) error {
	ruby, err := exec.LookPath("ruby")
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, ruby, "-c", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Syntax OK") {
		return fmt.Errorf("ruby -c %s: %v: %s", path, err, out)
	}
	return nil
}
