// Package stream frames the bytes of a command running in a VM over one
// connection between a client and the host: stdin, stdout and stderr kept
// apart, terminal size changes, signals and the exit status. The host serves
// it on an upgraded HTTP connection (POST /v1/vms/NAME/exec → 101), as
// `docker exec` does; both ends use this package.
//
// A frame is one byte of kind, four bytes of big-endian payload length, then
// the payload (at most MaxPayload bytes; longer data is split).
package stream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Kind says what a frame carries.
type Kind byte

// Frames from the client to the host.
const (
	Stdin    Kind = 'i' // bytes for the command's stdin
	StdinEOF Kind = 'I' // stdin is done: the command reads EOF
	Resize   Kind = 'r' // the terminal's new size: EncodeSize
	Signal   Kind = 's' // a signal name for the command ("INT", "TERM", "KILL")
)

// Frames from the host to the client.
const (
	Stdout Kind = 'o'
	Stderr Kind = 'e'
	Exit   Kind = 'x' // the command's exit status: EncodeExit; the last frame
	Error  Kind = 'E' // the host could not run or follow the command: text; the last frame
)

// MaxPayload bounds one frame; Writer splits longer writes.
const MaxPayload = 1 << 20

// Upgrade is the protocol name in the HTTP Upgrade header.
const Upgrade = "fvm-exec/1"

// ErrFrameTooLarge means a peer sent a frame longer than MaxPayload.
var ErrFrameTooLarge = errors.New("stream: frame too large")

// Conn reads and writes frames on one connection. Writes from several
// goroutines (stdout and stderr pumps) are serialised; reads are not.
type Conn struct {
	rw  io.ReadWriteCloser
	r   *bufio.Reader
	wmu sync.Mutex
	hdr [5]byte
}

// New wraps rw. A bufio.Reader that already holds bytes of rw (left over from
// reading an HTTP response) can be given as r; nil reads rw directly.
func New(rw io.ReadWriteCloser, r *bufio.Reader) *Conn {
	if r == nil {
		r = bufio.NewReaderSize(rw, 64<<10)
	}
	return &Conn{rw: rw, r: r}
}

// Write sends one frame (p must fit in MaxPayload).
func (c *Conn) Write(k Kind, p []byte) error {
	if len(p) > MaxPayload {
		return ErrFrameTooLarge
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.hdr[0] = byte(k)
	binary.BigEndian.PutUint32(c.hdr[1:], uint32(len(p)))
	if _, err := c.rw.Write(c.hdr[:]); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	_, err := c.rw.Write(p)
	return err
}

// Read returns the next frame. Its payload is freshly allocated.
func (c *Conn) Read() (Kind, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("stream: truncated frame header: %w", err)
		}
		return 0, nil, err // io.EOF: the peer closed between frames
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxPayload {
		return 0, nil, ErrFrameTooLarge
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return 0, nil, fmt.Errorf("stream: truncated frame: %w", err)
	}
	return Kind(h[0]), p, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.rw.Close() }

// Writer returns an io.Writer that sends what is written as frames of kind k.
func (c *Conn) Writer(k Kind) io.Writer { return frameWriter{c, k} }

type frameWriter struct {
	c *Conn
	k Kind
}

func (w frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), MaxPayload)]
		if err := w.c.Write(w.k, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// EncodeSize is a Resize payload: columns and rows, 16 bits each.
func EncodeSize(cols, rows int) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:], uint16(clamp(cols)))
	binary.BigEndian.PutUint16(b[2:], uint16(clamp(rows)))
	return b[:]
}

// DecodeSize reads a Resize payload.
func DecodeSize(p []byte) (cols, rows int, err error) {
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("stream: resize frame of %d bytes, want 4", len(p))
	}
	return int(binary.BigEndian.Uint16(p[0:])), int(binary.BigEndian.Uint16(p[2:])), nil
}

func clamp(n int) int { return max(0, min(n, 0xffff)) }

// EncodeExit is an Exit payload: the status as a signed 32-bit number.
func EncodeExit(status int) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(status)))
	return b[:]
}

// DecodeExit reads an Exit payload.
func DecodeExit(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("stream: exit frame of %d bytes, want 4", len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), nil
}
