// Command genicons draws fvm's icons into resources/: the menu-bar template
// icon (black + alpha, 22×22 and @2x 44×44), a white variant for Linux tray
// panels, and the app icon fvm.icns. The glyph is a terminal window, a box
// with a ">_" prompt, defined as distance functions so every size is drawn
// from the same shapes with anti-aliased edges.
//
//	go run ./scripts/genicons [-out resources]
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

// Glyph geometry in a 22×22 design grid (the menu bar's 1× size).
const (
	grid   = 22.0
	stroke = 1.5
)

type vec struct{ x, y float64 }

// glyphDist is the signed distance (negative inside) from p to the glyph's ink.
func glyphDist(p vec) float64 {
	box := math.Abs(roundedBox(p, vec{11, 11}, vec{8.25, 6.25}, 2.5)) - stroke/2
	chevron := math.Min(segment(p, vec{6.75, 8}, vec{9.75, 11}), segment(p, vec{9.75, 11}, vec{6.75, 14})) - stroke/2
	underscore := segment(p, vec{11.75, 14.25}, vec{15.25, 14.25}) - stroke/2
	return math.Min(box, math.Min(chevron, underscore))
}

// roundedBox is the signed distance to a box centred at c with half-size b and corner radius r.
func roundedBox(p, c, b vec, r float64) float64 {
	qx := math.Abs(p.x-c.x) - (b.x - r)
	qy := math.Abs(p.y-c.y) - (b.y - r)
	outside := math.Hypot(math.Max(qx, 0), math.Max(qy, 0))
	inside := math.Min(math.Max(qx, qy), 0)
	return outside + inside - r
}

// segment is the distance from p to the segment a–b.
func segment(p, a, b vec) float64 {
	dx, dy := b.x-a.x, b.y-a.y
	t := ((p.x-a.x)*dx + (p.y-a.y)*dy) / (dx*dx + dy*dy)
	t = math.Max(0, math.Min(1, t))
	return math.Hypot(p.x-(a.x+t*dx), p.y-(a.y+t*dy))
}

// coverage samples a shape 8×8 times per pixel: the fraction inside.
func coverage(px, py int, scale float64, dist func(vec) float64) float64 {
	// A pixel whose centre is farther from the edge than its half-diagonal is
	// all in or all out: no need to sample it.
	if d := dist(vec{(float64(px) + 0.5) / scale, (float64(py) + 0.5) / scale}); math.Abs(d) > 0.75/scale {
		if d < 0 {
			return 1
		}
		return 0
	}
	const n = 8
	in := 0
	for i := range n {
		for j := range n {
			p := vec{(float64(px) + (float64(i)+0.5)/n) / scale, (float64(py) + (float64(j)+0.5)/n) / scale}
			if dist(p) <= 0 {
				in++
			}
		}
	}
	return float64(in) / (n * n)
}

// trayIcon draws the glyph in one colour on transparency at size×size pixels.
func trayIcon(size int, ink color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	scale := float64(size) / grid
	for y := range size {
		for x := range size {
			if a := coverage(x, y, scale, glyphDist); a > 0 {
				c := ink
				c.A = uint8(math.Round(a * float64(ink.A)))
				img.SetNRGBA(x, y, c)
			}
		}
	}
	return img
}

// appIcon draws the white glyph on a blue rounded square, on Apple's icon
// grid (the square is 80% of the canvas).
func appIcon(size int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	s := float64(size)
	half := s * 0.4
	square := func(p vec) float64 { return roundedBox(p, vec{s / 2, s / 2}, vec{half, half}, half*0.45) }
	// The glyph's box is 18 units wide with its stroke; make it 62% of the square.
	k := 2 * half * 0.62 / 18
	glyph := func(p vec) float64 {
		return glyphDist(vec{(p.x-s/2)/k + 11, (p.y-s/2)/k + 11}) * k
	}
	top, bottom := [3]float64{0x3a, 0x7b, 0xd5}, [3]float64{0x1c, 0x3f, 0x7a}
	for y := range size {
		t := float64(y) / s
		var bg [3]float64
		for i := range bg {
			bg[i] = top[i] + (bottom[i]-top[i])*t
		}
		for x := range size {
			a := coverage(x, y, 1, square)
			if a == 0 {
				continue
			}
			g := coverage(x, y, 1, glyph)
			var c color.NRGBA
			c.R = uint8(math.Round(bg[0] + (255-bg[0])*g))
			c.G = uint8(math.Round(bg[1] + (255-bg[1])*g))
			c.B = uint8(math.Round(bg[2] + (255-bg[2])*g))
			c.A = uint8(math.Round(255 * a))
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func encodePNG(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// icns packs PNGs into Apple's icon container: "icns", total length, then
// (type, length including the 8-byte header, data) per image.
func icns(entries []icnsEntry) []byte {
	var body bytes.Buffer
	for _, e := range entries {
		body.WriteString(e.kind)
		_ = binary.Write(&body, binary.BigEndian, uint32(8+len(e.png)))
		body.Write(e.png)
	}
	var out bytes.Buffer
	out.WriteString("icns")
	_ = binary.Write(&out, binary.BigEndian, uint32(8+body.Len()))
	out.Write(body.Bytes())
	return out.Bytes()
}

type icnsEntry struct {
	kind string
	png  []byte
}

// generate returns every output file by name.
func generate() (map[string][]byte, error) {
	black := color.NRGBA{0, 0, 0, 255}
	white := color.NRGBA{255, 255, 255, 255}
	out := map[string][]byte{}
	for name, img := range map[string]image.Image{
		"tray-template.png":    trayIcon(22, black),
		"tray-template@2x.png": trayIcon(44, black),
		"tray-light@2x.png":    trayIcon(44, white),
	} {
		b, err := encodePNG(img)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", name, err)
		}
		out[name] = b
	}
	var entries []icnsEntry
	for _, e := range []struct {
		kind string
		size int
	}{{"ic07", 128}, {"ic08", 256}, {"ic09", 512}} {
		b, err := encodePNG(appIcon(e.size))
		if err != nil {
			return nil, fmt.Errorf("encode app icon %d: %w", e.size, err)
		}
		entries = append(entries, icnsEntry{e.kind, b})
	}
	out["fvm.icns"] = icns(entries)
	return out, nil
}

func main() {
	dir := flag.String("out", "resources", "directory to write the icons to")
	flag.Parse()
	files, err := generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "genicons:", err)
		os.Exit(1)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(*dir, name), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "genicons:", err)
			os.Exit(1)
		}
	}
}
