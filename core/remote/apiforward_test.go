package remote

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// TestMain lets this test binary play an ssh master that holds an API
// forward (FVM_TEST_FAKE_MASTER=SOCKET REVISION): a process of its own, so
// that a test can kill it.
func TestMain(m *testing.M) {
	if spec := os.Getenv("FVM_TEST_FAKE_MASTER"); spec != "" {
		f := strings.Fields(spec)
		ln, err := net.Listen("unix", f[0])
		if err != nil {
			os.Exit(2)
		}
		serveFakeHost(ln, f[1])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveFakeHost answers GET /v1/host as a host of revision rev, and echoes
// the bytes of POST /echo's upgraded connection.
func serveFakeHost(ln net.Listener, rev string) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/host", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.RevisionHeader, rev)
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		buf.Flush()
		io.Copy(c, buf) // until the client half-closes
	})
	http.Serve(ln, mux)
}

// forwardSSH is a transport whose master "holds" a forward at its
// forwardPath, served in this process; ssh itself is a script that greets.
func forwardSSH(t *testing.T, rev string) (*SSH, net.Listener) {
	s := fakeSSH(t, `case "$*" in *"-O forward"*) echo "$@" >> "$(dirname "$0")/forwards"; exit 0 ;; esac
echo 'fvm-dial-stdio/1 4 v /srv/fvm%20home/fvm.sock'; exec cat`)
	s.ControlDir = shortTempDir(t)
	ln, err := net.Listen("unix", s.forwardPath())
	if err != nil {
		t.Fatal(err)
	}
	go serveFakeHost(ln, rev)
	t.Cleanup(func() { ln.Close() })
	return s, ln
}

// shortTempDir fits a Unix socket's path, which t.TempDir may not.
func shortTempDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "fvmfw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestGreetingCarriesTheSocket(t *testing.T) {
	rev, version, socket := parseGreeting(Greeting(7, "v1.2", "/home/a b/.fvm/fvm.sock"))
	if rev != 7 || version != "v1.2" || socket != "/home/a b/.fvm/fvm.sock" {
		t.Fatalf("%d %q %q", rev, version, socket)
	}
	if _, _, socket := parseGreeting("fvm-dial-stdio/1 7 v1.2\n"); socket != "" { // an older server
		t.Fatalf("socket %q", socket)
	}
}

func TestDialGoesThroughTheForward(t *testing.T) {
	s, _ := forwardSSH(t, "4")
	c, err := s.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*forwardConn); !ok {
		t.Fatalf("dialled %T, want the forward", c)
	}
	// The connection is ready for the client's own requests.
	io.WriteString(c, "GET /v1/host HTTP/1.1\r\nHost: fvm\r\n\r\n")
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
		t.Fatalf("%q %v", buf[:n], err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.Program), "forwards")); err == nil {
		t.Error("a working forward was set up again")
	}
}

// A forward to a host of another revision, or to nothing, is passed over for
// dial-stdio (whose greeting says what is wrong), which sets the forward up.
func TestDialFallsBackFromTheForward(t *testing.T) {
	for _, rev := range []string{"3", "closed"} {
		s, ln := forwardSSH(t, rev)
		if rev == "closed" {
			ln.Close()
			// A socket file nobody listens on, as a dead master leaves it.
			l, _ := net.Listen("unix", s.forwardPath())
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}
		c, err := s.Dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		cc, ok := c.(*cmdConn)
		if !ok || cc.RemoteSocket != "/srv/fvm home/fvm.sock" {
			t.Fatalf("%s: dialled %T %+v, want dial-stdio", rev, c, c)
		}
		c.Close()
		// The socket path holds a space: ssh's -L cannot say it, nothing is asked.
		if _, err := os.Stat(filepath.Join(filepath.Dir(s.Program), "forwards")); err == nil {
			t.Errorf("%s: a forward to a path with a space was asked for", rev)
		}
	}
}

func TestEnsureForwardAsksTheMaster(t *testing.T) {
	s := fakeSSH(t, `echo "$@" >> "$(dirname "$0")/forwards"`)
	s.ControlDir = shortTempDir(t)
	s.ensureForward("/home/me/.local/state/fvm/fvm.sock")
	b, err := os.ReadFile(filepath.Join(filepath.Dir(s.Program), "forwards"))
	if err != nil {
		t.Fatal(err)
	}
	want := "-O forward -L " + s.forwardPath() + ":/home/me/.local/state/fvm/fvm.sock -- lab"
	if !strings.Contains(string(b), want) || !strings.Contains(string(b), "ControlPath="+s.ControlDir) {
		t.Fatalf("ssh ran with %q, want %q", b, want)
	}
}

// The master killed under a connection reads as a lost SSH connection; the
// host's own close of a connection is a plain end.
func TestForwardMasterKilled(t *testing.T) {
	s := fakeSSH(t, `exit 255`)
	s.ControlDir = shortTempDir(t)
	master := exec.Command(os.Args[0], "-test.run=^$")
	master.Env = append(os.Environ(), "FVM_TEST_FAKE_MASTER="+s.forwardPath()+" 4")
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	defer master.Process.Kill()
	go master.Wait() // reaped: a dead master is seen as gone either way
	// Wait for a connect to succeed: the socket file exists from bind(2),
	// a moment before listen(2) makes it answer.
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", s.forwardPath()); err == nil {
			c.Close()
			break
		} else if i > 500 {
			t.Fatal("the fake master did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	echo := func() net.Conn {
		c, err := s.Dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: fvm\r\nContent-Length: 0\r\n\r\n")
		buf := make([]byte, 200)
		if n, err := c.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "101") {
			t.Fatalf("upgrade: %q %v", buf[:n], err)
		}
		return c
	}
	c := echo()
	c.(*forwardConn).CloseWrite()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the host's close: %v, want a plain end", err)
	}
	c.Close()

	c = echo()
	defer c.Close()
	if pid := c.(*forwardConn).master; pid != master.Process.Pid {
		t.Fatalf("peer pid %d, want the master's %d", pid, master.Process.Pid)
	}
	master.Process.Signal(syscall.SIGKILL)
	_, err := io.ReadAll(c)
	var lost *LostError
	if !errors.As(err, &lost) || !strings.Contains(err.Error(), "the SSH connection to me@lab was lost") {
		t.Fatalf("read after the master died: %v", err)
	}
	// Nothing listens any more: the next dial goes to ssh (which fails here).
	if _, err := s.Dial(context.Background()); err == nil {
		t.Fatal("dialled a dead master's forward")
	}
}
