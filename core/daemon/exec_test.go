package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// guestSSH is a tiny sshd standing in for a guest: it accepts fvm's key, offers
// the VM's pinned host key and runs "echo WORDS", "cat" and "exit N".
type guestSSH struct {
	addr       netip.AddrPort
	handshakes atomic.Int32
}

func startGuestSSH(t *testing.T, hostKeyPEM []byte, userKey ssh.PublicKey) *guestSSH {
	t.Helper()
	hk, err := ssh.ParsePrivateKey(hostKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), userKey.Marshal()) {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown key")
	}}
	cfg.AddHostKey(hk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	g := &guestSSH{addr: netip.MustParseAddrPort(ln.Addr().String())}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go g.serve(c, cfg)
		}
	}()
	return g
}

func (g *guestSSH) serve(c net.Conn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	g.handshakes.Add(1)
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			for r := range creqs {
				if r.Type != "exec" {
					r.Reply(false, nil)
					continue
				}
				var p struct{ Cmd string }
				ssh.Unmarshal(r.Payload, &p)
				r.Reply(true, nil)
				status := 0
				switch name, arg, _ := strings.Cut(p.Cmd, " "); name {
				case "echo":
					fmt.Fprintln(ch, arg)
				case "cat":
					io.Copy(ch, ch)
				case "exit":
					status, _ = strconv.Atoi(arg)
					fmt.Fprint(ch.Stderr(), "bye")
				}
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
				ch.Close()
			}
		}()
	}
}

// sshMachine is a fake machine whose SSH is a guestSSH.
type sshMachine struct {
	fakeMachine
	ep netip.AddrPort
}

func (m *sshMachine) SSHEndpoint(context.Context) (netip.AddrPort, error) { return m.ep, nil }

type sshDriver struct {
	*fakeDriver
	ep func() netip.AddrPort
}

func (f *sshDriver) Start(ctx context.Context, inst *store.Instance, _ driver.StartOptions) (driver.Machine, error) {
	return &sshMachine{fakeMachine: fakeMachine{done: make(chan error, 1)}, ep: f.ep()}, nil
}

// TestExecThroughHeldConnection: commands run over the socket's exec stream,
// on one SSH connection the host holds, with exit status and streams intact.
func TestExecThroughHeldConnection(t *testing.T) {
	var guest *guestSSH
	drv := &sshDriver{fakeDriver: newFake("fake"), ep: func() netip.AddrPort { return guest.addr }}
	drv.caps = driver.Caps{OutlivesHost: true}
	h := startHostWith(t, Options{Drivers: []driver.Driver{drv}}, drv.fakeDriver)
	h.addImage(t)
	ctx := context.Background()
	v, err := h.c.Create(ctx, api.CreateRequest{Spec: newSpec("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Exec(ctx, "x", api.ExecRequest{Command: "echo hi"}); api.CodeOf(err) != api.CodeConflict || !strings.Contains(err.Error(), "fvm start x") {
		t.Fatalf("exec in a stopped vm: %v", err)
	}
	hostKey, err := os.ReadFile(v.Dir + "/" + store.HostKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := sshx.LoadOrCreateKey(h.layout.UserKey())
	if err != nil {
		t.Fatal(err)
	}
	guest = startGuestSSH(t, hostKey, signer.PublicKey())
	if _, err := h.c.Start(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if r, err := h.c.Wait(ctx, "x", api.WaitRequest{For: api.WaitSSH}); err != nil || r.Status != "ready" {
		t.Fatalf("wait ssh: %+v %v", r, err)
	}
	if _, err := h.c.Wait(ctx, "x", api.WaitRequest{For: "coffee"}); api.CodeOf(err) != api.CodeInvalid {
		t.Fatalf("wait for an unknown thing: %v", err)
	}
	run := func(cmd string, stdin io.Reader) (string, string, int) {
		t.Helper()
		sc, err := h.c.Exec(ctx, "x", api.ExecRequest{Command: cmd})
		if err != nil {
			t.Fatalf("exec %q: %v", cmd, err)
		}
		defer sc.Close()
		var out, errOut bytes.Buffer
		status, err := sc.Run(stdin, &out, &errOut)
		if err != nil {
			t.Fatalf("run %q: %v", cmd, err)
		}
		return out.String(), errOut.String(), status
	}
	for i := 0; i < 3; i++ {
		if out, _, st := run("echo hello", nil); out != "hello\n" || st != 0 {
			t.Fatalf("echo: %q %d", out, st)
		}
	}
	if _, errOut, st := run("exit 42", nil); st != 42 || errOut != "bye" {
		t.Fatalf("exit 42: %q %d", errOut, st)
	}
	data := make([]byte, 3<<20)
	rand.Read(data)
	if out, _, st := run("cat", bytes.NewReader(data)); st != 0 || out != string(data) {
		t.Fatalf("cat: %d bytes back, status %d", len(out), st)
	}
	if n := guest.handshakes.Load(); n != 1 {
		t.Fatalf("%d SSH handshakes for 5 commands, want 1 (the held connection)", n)
	}
	// The host's stop ends the held connection with the VM.
	if _, err := h.c.Stop(ctx, "x", api.StopRequest{Force: true}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := h.c.Exec(wctx, "x", api.ExecRequest{Command: "echo hi"}); api.CodeOf(err) != api.CodeConflict {
		t.Fatalf("exec after stop: %v", err)
	}
}
