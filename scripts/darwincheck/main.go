// Command darwincheck type-checks Go packages as a macOS build would see them,
// on any host and without a macOS SDK.
//
//	go run ./scripts/darwincheck [-arch arm64,amd64] [-tags t] [-test] [-v] [packages]
//
// For each architecture it asks `go list -deps` (GOOS=darwin, CGO_ENABLED=1)
// which files a darwin build compiles, then type-checks every package from
// source with go/types in dependency order. Cgo files are checked with
// FakeImportC: the Go code around C calls is checked, the C side is not (keep
// Objective-C glue small). Problems print as `file:line:col: msg [darwin/arch]`
// and make the command exit 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"go/types"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

type options struct {
	Dir      string   // where to run go list (the module root or inside it)
	Patterns []string // package patterns; default ./...
	Arches   []string // GOARCH values
	Tags     string   // extra build tags, comma-separated
	Tests    bool     // also check _test.go files (go list -test)
	// Overlay adds or replaces files (absolute path → content) as go list's
	// -overlay does, without touching the tree: the planted-error tests use it.
	Overlay map[string]string
	// Checked, when set, gets each architecture's checked packages (by
	// import path), for tests that inspect types; it may be called concurrently.
	Checked func(arch string, pkgs map[string]*types.Package)
	Verbose io.Writer // timings, when set
	Warn    io.Writer // go list's warnings, when set

	overlayFile string // the -overlay JSON written for Overlay
}

// problem is a diagnostic with every architecture it was found on.
type problem struct {
	diagnostic
	Arches []string
}

func (p problem) String() string {
	arches := make([]string, len(p.Arches))
	for i, a := range p.Arches {
		arches[i] = "darwin/" + a
	}
	return fmt.Sprintf("%s [%s]", p.diagnostic, strings.Join(arches, ","))
}

// run checks every architecture (in parallel, sharing parsed files) and
// returns the problems in a stable order, merged across architectures.
func run(ctx context.Context, opt options) ([]problem, error) {
	if len(opt.Patterns) == 0 {
		opt.Patterns = []string{"./..."}
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, fmt.Errorf("darwincheck: directory %q: %w", opt.Dir, err)
	}
	rel := func(name string) string {
		if r, err := filepath.Rel(dir, name); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return name
	}
	overlay, cleanup, err := writeOverlay(opt.Overlay)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	opt.overlayFile = overlay.file
	pc := newParseCache()
	pc.replace = overlay.replace
	results := make([][]diagnostic, len(opt.Arches))
	errs := make([]error, len(opt.Arches))
	var wg sync.WaitGroup
	for i, arch := range opt.Arches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			o := opt
			if i > 0 {
				o.Warn = nil // the same warnings for every architecture: print them once
			}
			pkgs, err := listPackages(ctx, dir, arch, o)
			if err != nil {
				errs[i] = err
				return
			}
			listed := time.Since(start)
			var checked map[string]*types.Package
			results[i], checked = checkArch(pkgs, arch, pc, rel)
			if opt.Checked != nil {
				opt.Checked(arch, checked)
			}
			if opt.Verbose != nil {
				fmt.Fprintf(opt.Verbose, "darwin/%s: %d packages, go list %v, total %v\n",
					arch, len(pkgs), listed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}

	var problems []problem
	index := map[diagnostic]int{}
	for i, diags := range results {
		for _, d := range diags {
			if j, ok := index[d]; ok {
				if last := problems[j].Arches; last[len(last)-1] != opt.Arches[i] {
					problems[j].Arches = append(problems[j].Arches, opt.Arches[i])
				}
				continue
			}
			index[d] = len(problems)
			problems = append(problems, problem{diagnostic: d, Arches: []string{opt.Arches[i]}})
		}
	}
	return problems, nil
}

func main() {
	arches := flag.String("arch", "arm64,amd64", "comma-separated GOARCH values to check")
	tags := flag.String("tags", "", "extra build tags, comma-separated")
	tests := flag.Bool("test", false, "also check _test.go files")
	verbose := flag.Bool("v", false, "print timings per architecture")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: darwincheck [flags] [packages]\n\n"+
			"Type-checks packages for GOOS=darwin (cgo on) without a macOS SDK.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	// A run allocates a few hundred MB of short-lived syntax and type data;
	// collecting less often saves about a fifth of the CPU time.
	debug.SetGCPercent(400)

	opt := options{Dir: ".", Patterns: flag.Args(), Tags: *tags, Tests: *tests, Arches: strings.Split(*arches, ","), Warn: os.Stderr}
	if *verbose {
		opt.Verbose = os.Stderr
	}
	problems, err := run(context.Background(), opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "darwincheck: %d problem(s) in the darwin build\n", len(problems))
		os.Exit(1)
	}
	if *verbose {
		fmt.Fprintln(os.Stderr, "darwincheck: ok")
	}
}
