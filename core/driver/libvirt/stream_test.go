package libvirt

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// fakeDaemon speaks enough of libvirt's RPC protocol for a stream: auth,
// connect, a domain lookup, and a channel or console that echoes what it gets
// in upper case.
type fakeDaemon struct {
	mu      sync.Mutex
	opened  [][]byte // payloads of the stream opens
	procs   []uint32
	dialled int
}

type pipeDialer struct{ f *fakeDaemon }

func (p pipeDialer) Dial() (net.Conn, error) {
	a, b := net.Pipe()
	p.f.mu.Lock()
	p.f.dialled++
	p.f.mu.Unlock()
	go p.f.serve(b)
	return a, nil
}

func (f *fakeDaemon) serve(c net.Conn) {
	defer c.Close()
	var wmu sync.Mutex
	send := func(proc uint32, typ, status uint32, serial uint32, payload []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		h := make([]byte, 28)
		binary.BigEndian.PutUint32(h[0:], uint32(28+len(payload)))
		binary.BigEndian.PutUint32(h[4:], remoteProgram)
		binary.BigEndian.PutUint32(h[8:], 1)
		binary.BigEndian.PutUint32(h[12:], proc)
		binary.BigEndian.PutUint32(h[16:], typ)
		binary.BigEndian.PutUint32(h[20:], serial)
		binary.BigEndian.PutUint32(h[24:], status)
		c.Write(append(h, payload...))
	}
	for {
		h := make([]byte, 28)
		if _, err := io.ReadFull(c, h); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(h[0:])
		payload := make([]byte, n-28)
		if _, err := io.ReadFull(c, payload); err != nil {
			return
		}
		proc, typ, serial, status := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:]), binary.BigEndian.Uint32(h[20:]), binary.BigEndian.Uint32(h[24:])
		f.mu.Lock()
		f.procs = append(f.procs, proc)
		f.mu.Unlock()
		const call, reply, stream = 0, 1, 3
		const ok, cont = 0, 2
		switch {
		case typ == call && proc == 66: // auth list: none needed
			send(proc, reply, ok, serial, []byte{0, 0, 0, 0})
		case typ == call && (proc == 1 || proc == 2): // connect open, close
			send(proc, reply, ok, serial, nil)
		case typ == call && proc == 24: // lookup by uuid: echo a domain named fvm-x
			d := openArgs(golibvirt.Domain{Name: "fvm-x", ID: 7}, "", 0)
			send(proc, reply, ok, serial, d[:len(d)-8]) // name, uuid, id
		case typ == call && (proc == procDomainOpenChannel || proc == procDomainOpenConsole):
			f.mu.Lock()
			f.opened = append(f.opened, payload)
			f.mu.Unlock()
			send(proc, reply, ok, serial, nil)
		case typ == stream && status == cont:
			send(proc, stream, cont, serial, bytes.ToUpper(payload))
		case typ == stream && status == ok: // the client finished: so does the daemon
			send(proc, stream, ok, serial, nil)
		}
	}
}

// TestChannelStream drives openStream (go-libvirt's stream call, reached by
// linkname) against the fake: the open's arguments are what go-libvirt's own
// wrapper sends, data flows both ways, and Close ends it.
func TestChannelStream(t *testing.T) {
	f := &fakeDaemon{}
	tg := &target{uri: "fake:///", remote: "qemu:///system", dialer: pipeDialer{f}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dom := golibvirt.Domain{Name: "fvm-x", UUID: golibvirt.UUID{1, 2, 3}, ID: 7}
	c, err := openStream(ctx, tg, procDomainOpenChannel, dom, SSHChannel, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"ssh-2.0-fvm\r\n", "more bytes"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != string(bytes.ToUpper([]byte(msg))) {
			t.Fatalf("echo %q", got)
		}
	}
	c.Close()
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("write after close")
	}

	// The open's arguments, against the bytes go-libvirt's own (one-way)
	// wrapper of the same call sends.
	l := golibvirt.NewWithDialer(pipeDialer{f})
	if err := l.ConnectToURI("qemu:///system"); err != nil {
		t.Fatal(err)
	}
	go l.DomainOpenChannel(dom, golibvirt.OptString{SSHChannel}, io.Discard, 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.opened)
		f.mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.Disconnect()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.opened) != 2 {
		t.Fatalf("%d opens", len(f.opened))
	}
	// openStream looked the domain up again on its own connection (id 7).
	if !bytes.Equal(f.opened[0], openArgs(golibvirt.Domain{Name: "fvm-x", ID: 7}, SSHChannel, 0)) {
		t.Errorf("open args %x", f.opened[0])
	}
	if !bytes.Equal(f.opened[1], openArgs(dom, SSHChannel, 0)) {
		t.Errorf("openArgs differs from go-libvirt's encoding:\n%x\n%x", openArgs(dom, SSHChannel, 0), f.opened[1])
	}
}

// TestStreamDeadline: past SetDeadline a read fails (SSH handshake timeouts).
func TestStreamDeadline(t *testing.T) {
	f := &fakeDaemon{}
	tg := &target{uri: "fake:///", remote: "qemu:///system", dialer: pipeDialer{f}}
	c, err := openStream(context.Background(), tg, procDomainOpenChannel, golibvirt.Domain{}, SSHChannel, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("read past the deadline returned no error")
	}
}
