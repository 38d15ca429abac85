package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// listedPackage holds the fields of `go list -json` that the checker needs.
type listedPackage struct {
	Dir        string
	ImportPath string
	Name       string
	Standard   bool
	ForTest    string // set on the test variant of a package (-test)
	DepOnly    bool
	GoFiles    []string
	CgoFiles   []string
	Imports    []string          // resolved import paths (vendor and ImportMap applied)
	ImportMap  map[string]string // source import path → resolved path, when they differ
	Module     *struct{ GoVersion string }
	Error      *struct{ Pos, Err string }
}

// listFields keeps `go list` from computing what we do not read (staleness
// above all), which makes it several times faster.
const listFields = "Dir,ImportPath,Name,Standard,ForTest,DepOnly,GoFiles,CgoFiles,Imports,ImportMap,Module,Error"

// goEnv is the environment of a darwin build for goarch: cgo on, so that
// CgoFiles are selected exactly as a real macOS build would select them.
func goEnv(goarch string) []string {
	return append(os.Environ(), "GOOS=darwin", "GOARCH="+goarch, "CGO_ENABLED=1")
}

// listPackages runs `go list -e -deps` for darwin/goarch in dir and returns the
// packages in dependency order (every package after all of its imports).
// `go list` does not run cgo for -json without -compiled, so no macOS SDK is needed.
// Its warnings (such as a pattern that matched no packages) go to opt.Warn.
func listPackages(ctx context.Context, dir, goarch string, opt options) ([]*listedPackage, error) {
	args := []string{"list", "-e", "-deps", "-json=" + listFields}
	if opt.Tests {
		args = append(args, "-test")
	}
	tags, patterns := opt.Tags, opt.Patterns
	if tags != "" {
		args = append(args, "-tags="+tags)
	}
	if opt.overlayFile != "" {
		args = append(args, "-overlay="+opt.overlayFile)
	}
	args = append(args, "--")
	args = append(args, patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = goEnv(goarch)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list for darwin/%s: %w: %s", goarch, err, strings.TrimSpace(stderr.String()))
	}
	if opt.Warn != nil && stderr.Len() > 0 {
		fmt.Fprintf(opt.Warn, "go list for darwin/%s: %s", goarch, stderr.Bytes())
	}
	var pkgs []*listedPackage
	dec := json.NewDecoder(&stdout)
	for {
		p := new(listedPackage)
		err := dec.Decode(p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("go list for darwin/%s: decode output: %w", goarch, err)
		}
		if opt.Tests && p.ForTest == "" && p.Name == "main" && strings.HasSuffix(p.ImportPath, ".test") {
			continue // the generated test main lives in the build cache; nothing of ours to check
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}
