package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// overlay is an Overlay written out for go list: each content in a file of
// its own, and the JSON that maps the overlaid paths to them.
type overlay struct {
	file    string            // -overlay argument ("" for none)
	replace map[string]string // overlaid path → content file
}

func writeOverlay(files map[string]string) (overlay, func(), error) {
	if len(files) == 0 {
		return overlay{}, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "darwincheck-overlay")
	if err != nil {
		return overlay{}, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	o := overlay{file: filepath.Join(dir, "overlay.json"), replace: map[string]string{}}
	i := 0
	for path, content := range files {
		if !filepath.IsAbs(path) {
			cleanup()
			return overlay{}, nil, fmt.Errorf("darwincheck: overlay path %q is not absolute", path)
		}
		i++
		f := filepath.Join(dir, fmt.Sprintf("%d.go", i))
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			cleanup()
			return overlay{}, nil, err
		}
		o.replace[path] = f
	}
	b, _ := json.Marshal(struct{ Replace map[string]string }{o.replace})
	if err := os.WriteFile(o.file, b, 0o644); err != nil {
		cleanup()
		return overlay{}, nil, err
	}
	return o, cleanup, nil
}
