// Command release makes fvm's release files (`make release`):
//
//	fvm-VERSION-{darwin,linux}-{arm64,amd64}.tar.gz   the CLI (CGO_ENABLED=0) and README.md
//	fvm-VERSION-src.tar.gz                             the source, which the Homebrew formula builds
//	fvm-app-VERSION-darwin-{arm64,amd64}.zip           fvm.app, signed (on a Mac only)
//	SHA256SUMS                                         a sum per file above
//	homebrew/Formula/fvm.rb, homebrew/Casks/fvm-app.rb the formula and (with the app) the cask
//
// and then checks what it made: the sums against the files, `fvm version`
// from this host's archive, the sums inside the formula and cask, and
// `ruby -c` of both (skipped, with a note, without ruby). Archives are
// reproducible: the same commit and Go give the same sums.
//
//	go run ./scripts/release -out dist -version v1.2.3
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

func main() {
	out := flag.String("out", "dist", "directory to write the release into (emptied first)")
	version := flag.String("version", "", "fvm version, e.g. v1.2.3 (default: git describe)")
	flag.Parse()
	if *version == "" {
		b, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
		if err != nil {
			fail(fmt.Errorf("no -version, and git describe failed: %w", err))
		}
		*version = strings.TrimSpace(string(b))
	}
	r := release{out: *out, tag: *version, log: os.Stderr}
	if err := r.make(context.Background()); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "release:", err)
	os.Exit(1)
}

// target is a platform the CLI is released for.
type target struct{ GOOS, GOARCH string }

var cliTargets = []target{{"darwin", "arm64"}, {"darwin", "amd64"}, {"linux", "arm64"}, {"linux", "amd64"}}

// appArches are the architectures fvm.app is built for (on a Mac).
var appArches = []string{"arm64", "amd64"}

// release is one run of the release tool.
type release struct {
	out string // the output directory
	tag string // the version as given (v1.2.3, or a git describe string)
	log *os.File
}

// version is the tag without its "v", as file names and Homebrew spell it.
func (r release) version() string { return strings.TrimPrefix(r.tag, "v") }

func cliArchive(version string, t target) string {
	return fmt.Sprintf("fvm-%s-%s-%s.tar.gz", version, t.GOOS, t.GOARCH)
}
func sourceArchive(version string) string { return fmt.Sprintf("fvm-%s-src.tar.gz", version) }
func appArchive(version, arch string) string {
	return fmt.Sprintf("fvm-app-%s-darwin-%s.zip", version, arch)
}
func (r release) path(parts ...string) string {
	return filepath.Join(append([]string{r.out}, parts...)...)
}
func (r release) note(format string, a ...any) { fmt.Fprintf(r.log, "release: "+format+"\n", a...) }

// make builds, sums, renders and checks the release.
func (r release) make(ctx context.Context) error {
	if err := os.RemoveAll(r.out); err != nil {
		return err
	}
	work := r.path("build")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	var files []string
	readme, err := os.ReadFile("README.md")
	if err != nil {
		return fmt.Errorf("README.md (run from the repository's root): %w", err)
	}
	for _, t := range cliTargets {
		bin := filepath.Join(work, t.GOOS+"-"+t.GOARCH, "fvm")
		if err := r.buildCLI(ctx, t, bin); err != nil {
			return err
		}
		exe, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		name := cliArchive(r.version(), t)
		dir := strings.TrimSuffix(name, ".tar.gz")
		if err := writeTarGz(r.path(name), []tarFile{{dir + "/fvm", 0o755, exe}, {dir + "/README.md", 0o644, readme}}); err != nil {
			return err
		}
		files = append(files, name)
		r.note("%s", name)
	}
	if err := r.sourceArchive(ctx); err != nil {
		return err
	}
	files = append(files, sourceArchive(r.version()))
	if runtime.GOOS == "darwin" {
		for _, arch := range appArches {
			if err := r.buildApp(ctx, arch, work); err != nil {
				return err
			}
			files = append(files, appArchive(r.version(), arch))
		}
	} else {
		r.note("fvm.app is built and signed on a Mac only: no app archives, no cask here")
	}
	sums, err := writeSums(r.path("SHA256SUMS"), r.out, files)
	if err != nil {
		return err
	}
	if err := r.renderHomebrew(sums); err != nil {
		return err
	}
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	return r.verify(ctx)
}

// buildCLI cross-compiles the CLI as `make build` does.
func (r release) buildCLI(ctx context.Context, t target, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/fvmhq/fvm/cli.Version="+r.tag, "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.GOOS, "GOARCH="+t.GOARCH)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the CLI for %s/%s: %w", t.GOOS, t.GOARCH, err)
	}
	return nil
}

// sourceArchive is `git archive` of HEAD (what the tag names), gzipped
// reproducibly.
func (r release) sourceArchive(ctx context.Context) error {
	prefix := "fvm-" + r.version() + "/"
	tarball, err := exec.CommandContext(ctx, "git", "archive", "--format=tar", "--prefix="+prefix, "HEAD").Output()
	if err != nil {
		return fmt.Errorf("git archive: %w", err)
	}
	if strings.HasSuffix(r.tag, "-dirty") {
		r.note("the tree has uncommitted changes: the source archive is HEAD without them")
	}
	return writeGz(r.path(sourceArchive(r.version())), tarball)
}

// buildApp builds and signs fvm.app for arch with build-app.sh and zips it
// the way macOS keeps its metadata (ditto).
func (r release) buildApp(ctx context.Context, arch, work string) error {
	out := filepath.Join(work, "app-"+arch)
	cmd := exec.CommandContext(ctx, "./scripts/build-app.sh", "build")
	cmd.Env = append(os.Environ(), "GOARCH="+arch, "OUT="+out, "VERSION="+r.tag)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build fvm.app for %s: %w", arch, err)
	}
	zip := r.path(appArchive(r.version(), arch))
	if b, err := exec.CommandContext(ctx, "ditto", "-c", "-k", "--keepParent", filepath.Join(out, "fvm.app"), zip).CombinedOutput(); err != nil {
		return fmt.Errorf("zip fvm.app for %s: %v: %s", arch, err, b)
	}
	r.note("%s", filepath.Base(zip))
	return nil
}
