package sshx

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Modes of the test server's listener, switched at run time on the same address,
// as a VM's forwarded port goes from "QEMU accepts, nobody answers" to sshd.
const (
	modeSSH    = iota
	modeSilent // accept TCP, never speak (handshake times out)
	modeDrop   // accept TCP and close at once (QEMU hostfwd before sshd listens)
)

type ptyInfo struct {
	Term       string
	Cols, Rows uint32
}

// testServer is an in-process sshd: public-key auth for one key, and sessions that
// understand a few fake commands (see run).
type testServer struct {
	t       *testing.T
	Addr    string
	HostKey string // authorized_keys line of the server's host key
	Client  ssh.Signer
	// ClientPEM is Client's private key, for tests that run OpenSSH's ssh.
	ClientPEM []byte
	mode      atomic.Int32
	cfg       *ssh.ServerConfig
	swapped   atomic.Pointer[ssh.ServerConfig] // a replacement config (another host key)
	ln        net.Listener

	// MaxSessions, when set, refuses more open sessions per connection (sshd's MaxSessions).
	MaxSessions int32
	connMu      sync.Mutex
	conns       []*ssh.ServerConn

	PtyReqs  chan ptyInfo
	Resizes  chan ptyInfo
	Signals  chan string
	Handshks atomic.Int32 // completed SSH handshakes
	// SlowAfterVersion, when set, delays the server's key exchange after its
	// version line: a loaded guest's sshd. SlowToSpeak delays the version line
	// itself: a listening guest slow to start its sshd.
	SlowAfterVersion, SlowToSpeak atomic.Int64 // time.Durations
	Execs                         atomic.Int32 // exec requests
}

func newSigner(t *testing.T) ssh.Signer {
	s, _ := newSignerPEM(t)
	return s
}

func newSignerPEM(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	priv, _, err := GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	host := newSigner(t)
	client, clientPEM := newSignerPEM(t)
	s := &testServer{
		t: t, HostKey: AuthorizedKey(host.PublicKey()), Client: client, ClientPEM: clientPEM,
		PtyReqs: make(chan ptyInfo, 4), Resizes: make(chan ptyInfo, 16), Signals: make(chan string, 4),
	}
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(client.PublicKey().Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	s.cfg.AddHostKey(host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	t.Cleanup(func() { ln.Close() })
	go s.serve()
	return s
}

func (s *testServer) Target() Target {
	return Target{Addr: s.Addr, User: "fvm", Signer: s.Client, HostKey: s.HostKey}
}

func (s *testServer) serve() {
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		switch s.mode.Load() {
		case modeSilent:
			held = append(held, c)
		case modeDrop:
			c.Close()
		default:
			go s.handle(c)
		}
	}
}

// slowConn delays its first write (the version line) by first and its second
// (the key exchange) by second.
type slowConn struct {
	net.Conn
	first, second time.Duration
	writes        atomic.Int32
}

func (c *slowConn) Write(p []byte) (int, error) {
	switch c.writes.Add(1) {
	case 1:
		time.Sleep(c.first)
	case 2:
		time.Sleep(c.second)
	}
	return c.Conn.Write(p)
}

func (s *testServer) handle(c net.Conn) {
	if a, b := time.Duration(s.SlowToSpeak.Load()), time.Duration(s.SlowAfterVersion.Load()); a > 0 || b > 0 {
		c = &slowConn{Conn: c, first: a, second: b}
	}
	cfg := s.cfg
	if sw := s.swapped.Load(); sw != nil {
		cfg = sw
	}
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	s.Handshks.Add(1)
	s.connMu.Lock()
	s.conns = append(s.conns, sc)
	s.connMu.Unlock()
	defer sc.Close()
	go ssh.DiscardRequests(reqs) // keepalive@openssh.com gets "failure", as from sshd
	var open atomic.Int32
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		if s.MaxSessions > 0 && open.Load() >= s.MaxSessions {
			nc.Reject(ssh.Prohibited, "open failed")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		open.Add(1)
		go func() {
			s.session(ch, creqs)
			open.Add(-1)
		}()
	}
}

// DropAll closes every connection, as a restarted sshd does.
func (s *testServer) DropAll() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// SwapHostKey makes new connections present another host key.
func (s *testServer) SwapHostKey() {
	cfg := &ssh.ServerConfig{PublicKeyCallback: s.cfg.PublicKeyCallback}
	cfg.AddHostKey(newSigner(s.t))
	s.swapped.Store(cfg)
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	var pty *ptyInfo
	var once sync.Once
	signals := make(chan string, 1)
	resized := make(chan ptyInfo, 4)
	start := func(f func() (status int, signal string)) {
		once.Do(func() {
			go func() {
				status, sig := f()
				switch {
				case sig == "-": // vanish: no status at all
				case sig != "":
					ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
						Signal     string
						CoreDumped bool
						Msg, Lang  string
					}{Signal: sig}))
				default:
					ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
				}
				ch.Close()
			}()
		})
	}
	defer close(signals) // the client went away: end a hanging command
	for r := range reqs {
		switch r.Type {
		case "pty-req":
			var p struct {
				Term             string
				Cols, Rows, W, H uint32
				Modes            string
			}
			ssh.Unmarshal(r.Payload, &p)
			pty = &ptyInfo{p.Term, p.Cols, p.Rows}
			trySend(s.PtyReqs, *pty)
			r.Reply(true, nil)
		case "window-change":
			var p struct{ Cols, Rows, W, H uint32 }
			ssh.Unmarshal(r.Payload, &p)
			trySend(s.Resizes, ptyInfo{Cols: p.Cols, Rows: p.Rows})
			trySend(resized, ptyInfo{Cols: p.Cols, Rows: p.Rows})
			r.Reply(true, nil)
		case "signal":
			var p struct{ Signal string }
			ssh.Unmarshal(r.Payload, &p)
			trySend(s.Signals, p.Signal)
			trySend(signals, p.Signal)
		case "exec":
			var p struct{ Cmd string }
			ssh.Unmarshal(r.Payload, &p)
			s.Execs.Add(1)
			r.Reply(true, nil)
			start(func() (int, string) { return run(ch, p.Cmd, pty, signals, resized) })
		case "shell":
			r.Reply(true, nil)
			start(func() (int, string) { return run(ch, "shell", pty, signals, resized) })
		case "subsystem":
			var p struct{ Name string }
			ssh.Unmarshal(r.Payload, &p)
			if p.Name != "sftp" {
				r.Reply(false, nil)
				continue
			}
			r.Reply(true, nil)
			go func() {
				srv, _ := sftp.NewServer(ch)
				srv.Serve()
				srv.Close()
			}()
		default:
			if r.WantReply {
				r.Reply(r.Type == "env", nil)
			}
		}
	}
}

func trySend[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// run executes a fake command:
//
//	echo WORDS  stdout WORDS, status 0
//	fail N      "failed" on stderr, status N
//	cat         stdin to stdout, status 0
//	killed      exit-signal KILL
//	vanish      channel closed without status
//	hang        until a signal arrives, reported as exit-signal
//	shell       prints the PTY it got; with a PTY it then waits for a window
//	            change and prints "resized COLSxROWS"; status 3
func run(ch ssh.Channel, cmd string, pty *ptyInfo, signals <-chan string, resized <-chan ptyInfo) (int, string) {
	name, arg, _ := strings.Cut(cmd, " ")
	switch name {
	case "echo":
		fmt.Fprintln(ch, arg)
		return 0, ""
	case "fail":
		n, _ := strconv.Atoi(arg)
		fmt.Fprintln(ch.Stderr(), "failed")
		return n, ""
	case "cat":
		io.Copy(ch, ch)
		return 0, ""
	case "killed":
		return 0, "KILL"
	case "vanish":
		return 0, "-"
	case "hang":
		return 0, <-signals
	case "shell":
		if pty != nil {
			fmt.Fprintf(ch, "pty %s %dx%d\n", pty.Term, pty.Cols, pty.Rows)
			select {
			case p := <-resized:
				fmt.Fprintf(ch, "resized %dx%d\n", p.Cols, p.Rows)
			case sig := <-signals:
				return 0, sig
			}
		} else {
			fmt.Fprintln(ch, "no pty")
		}
		return 3, ""
	}
	fmt.Fprintf(ch.Stderr(), "%s: command not found\n", name)
	return 127, ""
}
