package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"io"
)

// maxPPMPixels bounds a screen dump's size (a 16K × 8K screen): a corrupt
// header must not make us allocate gigabytes.
const maxPPMPixels = 16384 * 8192

// decodePPM reads a binary PPM (P6), what QEMU's screendump writes:
// "P6", width, height and maxval as decimal text separated by whitespace
// (with # comments), one whitespace byte, then the pixels as RGB triples, one
// byte per sample (two, big-endian, when maxval > 255). Samples are scaled to 8 bits.
func decodePPM(r io.Reader) (*image.RGBA, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, 2)
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("ppm: %w", err)
	}
	if string(magic) != "P6" {
		return nil, fmt.Errorf("ppm: magic %q, want P6", magic)
	}
	var hdr [3]int
	for i := range hdr {
		n, err := ppmNumber(br)
		if err != nil {
			return nil, fmt.Errorf("ppm header: %w", err)
		}
		hdr[i] = n
	}
	w, h, maxval := hdr[0], hdr[1], hdr[2]
	switch {
	case w <= 0 || h <= 0:
		return nil, fmt.Errorf("ppm: size %dx%d", w, h)
	case w*h > maxPPMPixels:
		return nil, fmt.Errorf("ppm: size %dx%d is too large", w, h)
	case maxval <= 0 || maxval > 65535:
		return nil, fmt.Errorf("ppm: maxval %d out of range 1..65535", maxval)
	}
	// ppmNumber consumed the single whitespace byte after maxval.
	bps := 1
	if maxval > 255 {
		bps = 2
	}
	row := make([]byte, w*3*bps)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		if _, err := io.ReadFull(br, row); err != nil {
			return nil, fmt.Errorf("ppm: pixel row %d of %d: %w", y, h, err)
		}
		px := img.Pix[y*img.Stride:]
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				var v int
				if bps == 1 {
					v = int(row[(x*3 + c)])
				} else {
					i := (x*3 + c) * 2
					v = int(row[i])<<8 | int(row[i+1])
				}
				if v > maxval {
					v = maxval
				}
				px[x*4+c] = uint8((v*255 + maxval/2) / maxval)
			}
			px[x*4+3] = 0xff
		}
	}
	return img, nil
}

// ppmNumber skips whitespace and comments, reads a decimal number and the one
// whitespace byte that ends it.
func ppmNumber(br *bufio.Reader) (int, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, noEOF(err)
		}
		switch {
		case c == '#':
			if _, err := br.ReadString('\n'); err != nil {
				return 0, noEOF(err)
			}
		case isPPMSpace(c):
		case c >= '0' && c <= '9':
			n := int(c - '0')
			for {
				c, err := br.ReadByte()
				if err != nil {
					return 0, noEOF(err)
				}
				if isPPMSpace(c) {
					return n, nil
				}
				if c < '0' || c > '9' {
					return 0, fmt.Errorf("unexpected byte %q in a number", c)
				}
				if n = n*10 + int(c-'0'); n > 1<<24 {
					return 0, errors.New("number too large")
				}
			}
		default:
			return 0, fmt.Errorf("unexpected byte %q", c)
		}
	}
}

func isPPMSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
