package libvirt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// DialVNC connects to the domain's VNC server, which listens on a Unix socket
// libvirt names on the libvirt host (no TCP port). libvirt's API offers the
// screen only as a file descriptor passed over its local socket
// (virDomainOpenGraphicsFD, which go-libvirt cannot receive and which no
// remote transport carries), so fvm connects to the socket itself: directly
// for a local daemon, through the user's OpenSSH (`ssh -L`, OpenSSH's
// stream-local forwarding) for qemu+ssh://. Other remote transports (tcp, tls)
// have no way to it: the display is refused with that reason.
func (m *machine) DialVNC(ctx context.Context) (net.Conn, error) {
	l, err := m.h.c.get(ctx)
	if err != nil {
		return nil, err
	}
	x, err := l.DomainGetXMLDesc(m.dom, 0)
	if err != nil {
		return nil, err
	}
	sock, err := vncSocket(x)
	if err != nil {
		return nil, fmt.Errorf("vm %q: %w", m.inst.Spec.Name, err)
	}
	t := m.h.c.t
	switch {
	case t.local:
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	case t.ssh != nil:
		return t.ssh.forward(sock)
	}
	return nil, fmt.Errorf("vm %q: its screen is a Unix socket on the libvirt host, which %s cannot reach: use a qemu+ssh:// URI", m.inst.Spec.Name, t.uri)
}

// vncSocket finds the VNC socket in a running domain's XML.
func vncSocket(domXML string) (string, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(domXML); err != nil {
		return "", err
	}
	if d.Devices != nil {
		for _, g := range d.Devices.Graphics {
			if g.VNC == nil {
				continue
			}
			if g.VNC.Socket != "" {
				return g.VNC.Socket, nil
			}
			for _, l := range g.VNC.Listeners {
				if l.Socket != nil && l.Socket.Socket != "" {
					return l.Socket.Socket, nil
				}
			}
		}
	}
	return "", errors.New("its domain has no VNC socket")
}

// Screenshot captures the screen with libvirt's virDomainScreenshot (QEMU
// sends a PPM, or a PNG from newer QEMU).
//
// Now and then (a few calls in a hundred, here with libvirt 9.0 and QEMU
// 7.2) libvirt ends the picture's stream before its first byte or halfway,
// or never ends it: each try has a session of its own and a short limit, and
// such a try is made again.
func (m *machine) Screenshot(ctx context.Context) (image.Image, error) {
	var err error
	for try := 1; try <= screenshotTries; try++ {
		var img image.Image
		if img, err = m.screenshotOnce(ctx); err == nil {
			return img, nil
		}
		if ctx.Err() != nil || !(errors.Is(err, errCutPicture) || errors.Is(err, errStreamDropped)) {
			break
		}
	}
	return nil, fmt.Errorf("vm %q: libvirt screenshot: %w", m.inst.Spec.Name, err)
}

// screenshotTries bounds the tries at a picture; screenshotLimit is one
// try's (a 1280x800 PPM is 3 MB: well under a second on a local libvirt).
const (
	screenshotTries = 4
	screenshotLimit = 15 * time.Second
)

// errCutPicture: the stream ended before the picture did.
var errCutPicture = errors.New("libvirt cut the picture's stream short")

// screenshotOnce is one try.
func (m *machine) screenshotOnce(ctx context.Context) (image.Image, error) {
	var buf bytes.Buffer // this try's own: a dropped try's stream may still write
	var mime golibvirt.OptString
	err := oneShot(ctx, m.h.c.t, screenshotLimit, "screenshot", func(l *golibvirt.Libvirt) error {
		dom, err := l.DomainLookupByUUID(m.dom.UUID)
		if err != nil {
			return err
		}
		mime, err = l.DomainScreenshot(dom, &buf, 0, 0)
		if err != nil && strings.HasPrefix(err.Error(), "xdr:") {
			// go-libvirt decodes the MIME type from the stream's closing
			// packet, not from the call's reply: it never decodes, though
			// the picture came whole. The bytes say what they are.
			mime, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var img image.Image
	if (len(mime) > 0 && mime[0] == "image/png") || bytes.HasPrefix(buf.Bytes(), []byte("\x89PNG")) {
		img, err = png.Decode(&buf)
	} else {
		img, err = decodePPM(&buf)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCutPicture, err)
	}
	return img, nil
}

// decodePPM decodes a binary PPM (P6, maxval 255), what QEMU's screendump writes.
func decodePPM(r io.Reader) (image.Image, error) {
	br := bufio.NewReader(r)
	var fields []int
	magic, err := ppmToken(br)
	if err != nil || magic != "P6" {
		return nil, fmt.Errorf("screenshot: not a binary PPM (%q)", magic)
	}
	for len(fields) < 3 {
		tok, err := ppmToken(br)
		if err != nil {
			return nil, fmt.Errorf("screenshot: PPM header: %w", err)
		}
		n, err := strconv.Atoi(tok)
		if err != nil || n <= 0 || n > 1<<15 {
			return nil, fmt.Errorf("screenshot: PPM header field %q", tok)
		}
		fields = append(fields, n)
	}
	w, h, maxval := fields[0], fields[1], fields[2]
	if maxval != 255 {
		return nil, fmt.Errorf("screenshot: PPM maxval %d, want 255", maxval)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	px := make([]byte, 3*w)
	for y := 0; y < h; y++ {
		if _, err := io.ReadFull(br, px); err != nil {
			return nil, fmt.Errorf("screenshot: PPM pixels: %w", err)
		}
		for x := 0; x < w; x++ {
			o := img.PixOffset(x, y)
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = px[3*x], px[3*x+1], px[3*x+2], 255
		}
	}
	return img, nil
}

// ppmToken reads one whitespace-separated header token (skipping comments)
// and the one whitespace byte after it.
func ppmToken(br *bufio.Reader) (string, error) {
	var tok []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		switch {
		case c == '#' && len(tok) == 0:
			if _, err := br.ReadString('\n'); err != nil {
				return "", err
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			tok = append(tok, c)
		}
	}
}
