package client

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/fvmhq/fvm/core/api"
)

// DialGuest opens a TCP connection to port on a running VM's loopback,
// carried over the SSH connection the host holds to the VM (`fvm
// port-forward`): its bytes are the guest port's, both ways.
func (c *Client) DialGuest(ctx context.Context, name string, port uint16) (net.Conn, error) {
	return c.tunnel(ctx, "/v1/vms/"+url.PathEscape(name)+"/tunnel?port="+strconv.Itoa(int(port)))
}

// DialConsole opens a TCP connection to the host's web console, which then
// also accepts requests for the client's own listener on 127.0.0.1:localPort
// (`fvm display` of a remote host).
func (c *Client) DialConsole(ctx context.Context, localPort int) (net.Conn, error) {
	return c.tunnel(ctx, "/v1/console/tunnel?port="+strconv.Itoa(localPort))
}

// tunnel makes one upgraded connection of api.TunnelProtocol. It dials its
// own connection rather than take one from the pool: a tunnel lives as long
// as the TCP connection it carries.
func (c *Client) tunnel(ctx context.Context, path string) (net.Conn, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, c.hostError(err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (net.Conn, error) {
		stop()
		conn.Close()
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+api.HostName+path, nil)
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.TunnelProtocol)
	if err := req.Write(conn); err != nil {
		return fail(c.hostError(err))
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(&HostFailedError{Socket: c.socket, What: "GET " + path, Err: err, Remote: c.remote})
	}
	if rev := resp.Header.Get(api.RevisionHeader); rev != strconv.Itoa(api.Revision) {
		resp.Body.Close()
		conn.Close()
		stop()
		return nil, c.revisionError(ctx, rev)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return fail(fmt.Errorf("GET %s: the host did not switch to a tunnel (%s)", path, resp.Status))
		}
		return fail(responseError("GET", path, resp))
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	return &bufferedConn{Conn: conn, r: br}, nil
}

// bufferedConn reads what the response's reader already holds first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes when the connection can (a Unix socket, an ssh pipe).
func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
