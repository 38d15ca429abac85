package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRegistryEntry: whatever an image's entry in images/ holds, `fvm images`
// lists it under its file's name, usable or broken with a one-line reason,
// and Get agrees; an entry that names another image is broken.
func FuzzRegistryEntry(f *testing.F) {
	f.Add([]byte(`{"name":"x","path":"/BASE","format":"qcow2","virtualSize":1073741824,"digest":"sha256:00"}`))
	f.Add([]byte(`{"name":"other","path":"/BASE"}`))
	f.Add([]byte(`{"name":"x","path":"relative"}`))
	f.Add([]byte(`{"name":"x","path":5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := testRegistry(t)
		os.MkdirAll(r.Layout.ImagesDir(), 0o700)
		base := filepath.Join(r.Layout.BasesDir(), "b.qcow2")
		os.MkdirAll(r.Layout.BasesDir(), 0o700)
		os.WriteFile(base, nil, 0o400)
		b = []byte(strings.ReplaceAll(string(b), "/BASE", base))
		os.WriteFile(filepath.Join(r.Layout.ImagesDir(), "x.json"), b, 0o600)
		imgs, err := r.List()
		if err != nil || len(imgs) != 1 || imgs[0].Name != "x" || strings.ContainsAny(imgs[0].Broken, "\n\r") {
			t.Fatalf("List = %+v, %v: want x once", imgs, err)
		}
		if _, err := r.Get("x"); err == nil && imgs[0].Broken != "" {
			t.Fatalf("Get works on an image List calls broken: %s", imgs[0].Broken)
		}
	})
}
