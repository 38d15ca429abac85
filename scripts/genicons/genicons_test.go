package main

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// The icons in resources/ must be what this generator draws: edit the
// generator, then run `go run ./scripts/genicons`. Pixels are compared, not
// bytes, so a change in Go's PNG compressor does not fail the test.
func TestResourcesAreUpToDate(t *testing.T) {
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", "resources", name))
		if err != nil {
			t.Fatalf("%v (run go run ./scripts/genicons)", err)
		}
		if filepath.Ext(name) == ".icns" {
			ga, wa := icnsEntries(t, got), icnsEntries(t, want)
			if len(ga) != len(wa) {
				t.Errorf("resources/%s has %d images, the generator draws %d: run go run ./scripts/genicons", name, len(ga), len(wa))
				continue
			}
			for kind, w := range wa {
				if g, ok := ga[kind]; !ok || !samePixels(t, g, w) {
					t.Errorf("resources/%s image %s differs from the generator's: run go run ./scripts/genicons", name, kind)
				}
			}
			continue
		}
		if !samePixels(t, got, want) {
			t.Errorf("resources/%s differs from the generator's drawing: run go run ./scripts/genicons", name)
		}
	}
}

func icnsEntries(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for off := 8; off+8 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[off+4 : off+8]))
		if n < 8 || off+n > len(data) {
			t.Fatalf("icns entry at %d: bad length %d", off, n)
		}
		out[string(data[off:off+4])] = data[off+8 : off+n]
		off += n
	}
	return out
}

func samePixels(t *testing.T, a, b []byte) bool {
	t.Helper()
	ia, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	ib, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	na, nb := image.NewNRGBA(ia.Bounds()), image.NewNRGBA(ib.Bounds())
	draw.Draw(na, na.Bounds(), ia, ia.Bounds().Min, draw.Src)
	draw.Draw(nb, nb.Bounds(), ib, ib.Bounds().Min, draw.Src)
	return na.Bounds() == nb.Bounds() && bytes.Equal(na.Pix, nb.Pix)
}
