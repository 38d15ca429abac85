package qemu

import (
	"bytes"
	"image/color"
	"strings"
	"testing"
)

func TestDecodePPM(t *testing.T) {
	img, err := decodePPM(strings.NewReader("P6\n# made by QEMU\n3 2\n255\n" +
		"\xff\x00\x00\x00\xff\x00\x00\x00\xff" +
		"\x00\x00\x00\x80\x80\x80\xff\xff\xff"))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]color.RGBA{
		{{0xff, 0, 0, 0xff}, {0, 0xff, 0, 0xff}, {0, 0, 0xff, 0xff}},
		{{0, 0, 0, 0xff}, {0x80, 0x80, 0x80, 0xff}, {0xff, 0xff, 0xff, 0xff}},
	}
	if b := img.Bounds(); b.Dx() != 3 || b.Dy() != 2 {
		t.Fatalf("bounds %v", b)
	}
	for y, row := range want {
		for x, c := range row {
			if got := img.RGBAAt(x, y); got != c {
				t.Errorf("(%d,%d) = %v, want %v", x, y, got, c)
			}
		}
	}
}

func TestDecodePPMSixteenBit(t *testing.T) {
	img, err := decodePPM(strings.NewReader("P6 1 1 65535\n\xff\xff\x80\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	if got := img.RGBAAt(0, 0); got != (color.RGBA{0xff, 0x80, 0, 0xff}) {
		t.Errorf("pixel %v", got)
	}
}

func TestDecodePPMRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":      "",
		"ascii ppm":  "P3\n1 1\n255\n0 0 0\n",
		"no size":    "P6\n",
		"zero width": "P6\n0 1\n255\n",
		"huge":       "P6\n100000 100000\n255\n",
		"maxval 0":   "P6\n1 1\n0\n\x00\x00\x00",
		"short":      "P6\n2 2\n255\n\x00\x00\x00",
		"junk":       "P6\n1x 1\n255\n\x00\x00\x00",
		"overflow":   "P6\n99999999999999999999 1\n255\n",
	} {
		if _, err := decodePPM(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodePPM(f *testing.F) {
	f.Add([]byte("P6\n2 1\n255\n\xff\x00\x00\xff\xff\xff"))
	f.Add([]byte("P6 1 1 65535\n\xff\xff\x80\x00\x00\x00"))
	f.Add([]byte("P6\n# c\n1 1\n1\n\x01\x00\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := decodePPM(bytes.NewReader(b))
		if err != nil {
			return
		}
		if r := img.Bounds(); r.Dx() <= 0 || r.Dy() <= 0 || r.Dx()*r.Dy() > maxPPMPixels {
			t.Fatalf("bounds %v", r)
		}
	})
}
