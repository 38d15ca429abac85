package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/scanner"
	"go/token"
	"go/types"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// diagnostic is one problem found for one architecture.
type diagnostic struct {
	Pos string // file:line:col (or a package path when go list gives no position)
	Msg string
}

func (d diagnostic) String() string { return d.Pos + ": " + d.Msg }

// node is one package being checked; done closes once pkg is final.
type node struct {
	lp    *listedPackage
	pkg   *types.Package
	diags []diagnostic
	done  chan struct{}
}

// checkArch type-checks pkgs (in `go list -deps` order) for darwin/goarch and
// returns the problems found, in package order. Packages run in parallel as
// soon as their imports are checked. Packages named on the command line are
// checked fully; their dependencies only as far as an importer needs
// (declarations, no function bodies), which keeps a run to about a second.
func checkArch(pkgs []*listedPackage, goarch string, pc *parseCache, rel func(string) string) ([]diagnostic, map[string]*types.Package) {
	nodes := make(map[string]*node, len(pkgs))
	ordered := make([]*node, 0, len(pkgs))
	for _, lp := range pkgs {
		n := &node{lp: lp, done: make(chan struct{})}
		nodes[lp.ImportPath] = n
		ordered = append(ordered, n)
	}
	sizes := types.SizesFor("gc", goarch)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for _, n := range ordered {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(n.done)
			n.check(nodes, sizes, sem, pc, rel)
		}()
	}
	wg.Wait()
	var all []diagnostic
	checked := make(map[string]*types.Package, len(ordered))
	for _, n := range ordered {
		all = append(all, n.diags...)
		checked[n.lp.ImportPath] = n.pkg
	}
	return all, checked
}

func (n *node) check(nodes map[string]*node, sizes types.Sizes, sem chan struct{}, pc *parseCache, rel func(string) string) {
	lp := n.lp
	if lp.ImportPath == "unsafe" {
		n.pkg = types.Unsafe
		return
	}
	if lp.Error != nil {
		pos := lp.Error.Pos
		if pos == "" {
			pos = lp.ImportPath
		} else {
			pos = rel(pos)
		}
		// go list's messages may span lines ("...; to add:\n\tgo get ..."): keep one line each.
		msg := strings.Join(strings.Fields(lp.Error.Err), " ")
		n.diags = append(n.diags, diagnostic{Pos: pos, Msg: msg})
	}
	names := append(append([]string(nil), lp.GoFiles...), lp.CgoFiles...)
	if len(names) == 0 {
		return
	}

	// Parse while imports are still being checked.
	sem <- struct{}{}
	files := make([]*ast.File, 0, len(names))
	for _, name := range names {
		f, err := pc.parse(filepath.Join(lp.Dir, name), lp.DepOnly)
		if err != nil {
			n.addParseError(err, pc.fset, rel)
		}
		if f != nil {
			files = append(files, f)
		}
	}
	<-sem

	for _, imp := range lp.Imports {
		if dep := nodes[imp]; dep != nil {
			<-dep.done
		}
	}

	sem <- struct{}{}
	defer func() { <-sem }()
	conf := types.Config{
		Importer:         importer{importMap: lp.ImportMap, nodes: nodes},
		Sizes:            sizes,
		FakeImportC:      true, // C.x has no type: calls into C are not checked, the Go around them is
		IgnoreFuncBodies: lp.DepOnly,
		Error: func(err error) {
			var te types.Error
			if errors.As(err, &te) {
				if strings.Contains(te.Msg, errListedAbove.Error()) {
					return // the go list error for that import is already reported
				}
				n.diags = append(n.diags, diagnostic{Pos: position(te.Fset, te.Pos, rel), Msg: te.Msg})
				return
			}
			n.diags = append(n.diags, diagnostic{Pos: lp.ImportPath, Msg: err.Error()})
		},
	}
	if lp.Module != nil && lp.Module.GoVersion != "" {
		conf.GoVersion = "go" + lp.Module.GoVersion
	}
	// Errors reach conf.Error; a package is usable by importers even when incomplete.
	n.pkg, _ = conf.Check(lp.ImportPath, pc.fset, files, nil)
}

func (n *node) addParseError(err error, fset *token.FileSet, rel func(string) string) {
	var list scanner.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			n.diags = append(n.diags, diagnostic{Pos: rel(e.Pos.String()), Msg: e.Msg})
		}
		return
	}
	n.diags = append(n.diags, diagnostic{Pos: n.lp.ImportPath, Msg: err.Error()})
}

func position(fset *token.FileSet, pos token.Pos, rel func(string) string) string {
	p := fset.Position(pos)
	p.Filename = rel(p.Filename)
	return p.String()
}

// errListedAbove marks an import that failed because go list could not load
// the package: its own error says why, the import error would only repeat it.
var errListedAbove = errors.New("go list error reported for this package")

// importer hands out packages that checkArch has already checked; go list's
// ImportMap resolves vendored standard-library paths.
type importer struct {
	importMap map[string]string
	nodes     map[string]*node
}

func (im importer) Import(path string) (*types.Package, error) {
	return im.ImportFrom(path, "", 0)
}

func (im importer) ImportFrom(path, _ string, _ types.ImportMode) (*types.Package, error) {
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	if p, ok := im.importMap[path]; ok {
		path = p
	}
	n := im.nodes[path]
	if n == nil {
		return nil, fmt.Errorf("package %s is not in go list's output", path)
	}
	if n.pkg == nil {
		if n.lp.Error != nil {
			return nil, errListedAbove
		}
		return nil, fmt.Errorf("package %s has no Go files for darwin", path)
	}
	return n.pkg, nil
}
