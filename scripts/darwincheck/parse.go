package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"sync"
)

// parseCache parses each file once per run: most files are the same for
// arm64 and amd64, and go/types never modifies the syntax trees it checks, so
// both architectures share them.
type parseCache struct {
	fset    *token.FileSet
	mu      sync.Mutex
	files   map[parseKey]*parsedFile
	replace map[string]string // overlay: file → the file holding its content
}

type parseKey struct {
	name    string
	outline bool
}

type parsedFile struct {
	once sync.Once
	file *ast.File
	err  error
}

func newParseCache() *parseCache {
	return &parseCache{fset: token.NewFileSet(), files: map[parseKey]*parsedFile{}}
}

// parse parses filename; with outline, the file is only needed for its
// declarations (a dependency's), and the insides of function bodies and
// top-level composite literals are blanked first: parsing them is most of
// the cost, and importers never see them.
func (c *parseCache) parse(filename string, outline bool) (*ast.File, error) {
	key := parseKey{filename, outline}
	c.mu.Lock()
	pf := c.files[key]
	if pf == nil {
		pf = new(parsedFile)
		c.files[key] = pf
	}
	c.mu.Unlock()
	pf.once.Do(func() {
		path := filename
		if r, ok := c.replace[filename]; ok {
			path = r
		}
		src, err := os.ReadFile(path)
		if err != nil {
			pf.err = err
			return
		}
		if outline {
			blankBodies(src)
		}
		// ParseComments is needed for //go:build lines that set a file's Go version.
		pf.file, pf.err = parser.ParseFile(c.fset, filename, src, parser.ParseComments|parser.SkipObjectResolution)
	})
	return pf.file, pf.err
}
