package remote

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// The shared SSH connection also carries the API itself. Once a dial-stdio
// session has answered (the host runs there, its revision matches), the
// ControlMaster is asked to forward a socket in the private control dir to
// the host's socket on the server (OpenSSH's streamlocal forwarding: `ssh -O
// forward -L LOCAL:REMOTE`). Every later connection of every command is then
// a channel of that one SSH connection: no ssh process here, no shell and no
// fvm process there (each cost ~0.25 s on a busy machine). A forward that does
// not answer (the host stopped, the server forbids streamlocal forwarding, the
// master went away) falls back to dial-stdio, which starts the host and sets
// the forward up again. Only this user reaches the socket (the dir is 0700,
// and the peer's uid is checked), as with the ControlMaster's own socket.

// errNoForward is a forward that is not there or does not reach the host.
var errNoForward = errors.New("no API forward")

// forwardPath is the local end of the forward to h's host socket, beside the
// master's socket (ControlDir leaves room for the name: see ControlDir).
func (s *SSH) forwardPath() string {
	sum := sha256.Sum256([]byte(s.Host.String()))
	return filepath.Join(s.ControlDir, "fvm-api-"+hex.EncodeToString(sum[:8]))
}

// dialForward connects through the forward, if there is one that reaches a
// host of this client's revision.
func (s *SSH) dialForward(ctx context.Context) (net.Conn, error) {
	path := s.forwardPath()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			os.Remove(path) // the master that listened there is gone
		}
		return nil, errNoForward
	}
	uc := c.(*net.UnixConn)
	pid, uid, err := peerOf(uc)
	if err != nil || uid != os.Getuid() {
		c.Close()
		return nil, errNoForward
	}
	// The master accepts at once and opens the far end afterwards: one round
	// trip through the API proves that the channel reaches a host, and one of
	// this revision (another revision's errors come from dial-stdio's greeting).
	if err := s.checkHost(ctx, c); err != nil {
		c.Close()
		return nil, errNoForward
	}
	return &forwardConn{UnixConn: uc, host: s.Host, master: pid}, nil
}

// checkHost asks the host behind c who it is, leaving c ready for the next request.
func (s *SSH) checkHost(ctx context.Context, c net.Conn) error {
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+api.HostName+"/v1/host?brief=1", nil)
	if err != nil {
		return err
	}
	if err := req.Write(c); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET /v1/host: %s", resp.Status)
	case s.Revision != 0 && resp.Header.Get(api.RevisionHeader) != strconv.Itoa(s.Revision):
		return fmt.Errorf("the host speaks revision %s", resp.Header.Get(api.RevisionHeader))
	case resp.Close || br.Buffered() != 0:
		return errors.New("the host did not keep the connection")
	}
	return nil
}

// ensureForward asks the master for the forward to the host's socket on the
// server (remoteSocket, from dial-stdio's greeting). Failures only cost the
// speed: every connection then goes through dial-stdio.
func (s *SSH) ensureForward(remoteSocket string) {
	local := s.forwardPath()
	// ssh's -L takes LOCAL:REMOTE; a path with a colon or a space cannot be said.
	if s.ControlDir == "" || remoteSocket == "" || strings.ContainsAny(local+remoteSocket, ": \t\r\n") {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	args := append(s.Options(), "-O", "forward", "-L", local+":"+remoteSocket, "--", s.Host.Server)
	cmd := exec.CommandContext(ctx, s.program(), args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Run()
}

// forwardConn is a connection through the master's forward. Its end is the
// host's close, or the master's death: the latter is told as a lost SSH
// connection, as with dial-stdio's ssh.
type forwardConn struct {
	*net.UnixConn
	host   Host
	master int // the ssh master's pid (the socket's peer)
}

func (c *forwardConn) Read(b []byte) (int, error) {
	n, err := c.UnixConn.Read(b)
	if ended(err) && c.masterGone() {
		return n, c.lost()
	}
	return n, err
}

func (c *forwardConn) Write(b []byte) (int, error) {
	n, err := c.UnixConn.Write(b)
	if ended(err) && c.masterGone() {
		return n, c.lost()
	}
	return n, err
}

// ended is an error from the peer's side: not our own Close or a deadline.
func ended(err error) bool {
	var ne net.Error
	return err != nil && !errors.Is(err, net.ErrClosed) && !(errors.As(err, &ne) && ne.Timeout())
}

func (c *forwardConn) lost() error {
	return &LostError{Server: c.host.Name(), How: fmt.Sprintf("the shared ssh connection, pid %d, ended", c.master)}
}

// masterGone says whether the master has died. A killed process closes its
// sockets a moment before it can be seen dead: look for up to 100 ms.
func (c *forwardConn) masterGone() bool {
	if c.master <= 0 {
		return false
	}
	for i := 0; ; i++ {
		if processGone(c.master) {
			return true
		}
		if i == 10 {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
