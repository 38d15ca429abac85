// Package client is the typed client of the fvm API over its Unix socket, used by
// the CLI and the menu-bar app. It imports no driver or daemon code.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// Client talks to one host: its Unix socket on this machine, or any
// connection a Dialer makes (a remote host through SSH: core/remote).
type Client struct {
	socket string // what messages name: the socket's path, or the remote host's address
	remote bool
	dial   Dialer
	http   *http.Client
	// Version is this client's fvm version, named when the host speaks another
	// API revision.
	Version string
}

// Dialer opens one connection to the host's API.
type Dialer func(ctx context.Context) (net.Conn, error)

// New returns a client for the socket at path.
func New(socket string) *Client {
	return newClient(socket, false, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	})
}

// NewRemote returns a client of a host on another machine, named addr in
// messages, reached through dial (each call one connection: streams and
// upgrades take one each; idle ones are kept for the next request).
func NewRemote(addr string, dial Dialer) *Client {
	return newClient(addr, true, dial)
}

func newClient(addr string, remote bool, dial Dialer) *Client {
	tr := &http.Transport{
		DialContext:  func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		MaxIdleConns: 4,
		// Every connection of a remote host is an ssh process: keep a few.
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{socket: addr, remote: remote, dial: dial, http: &http.Client{Transport: tr}}
}

// Socket is the socket path the client uses, or a remote host's address.
func (c *Client) Socket() string { return c.socket }

// Remote reports whether the host is on another machine (NewRemote).
func (c *Client) Remote() bool { return c.remote }

// CloseIdle closes the connections kept for later requests (for a remote
// host, their ssh processes).
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// Ping checks that a host answers within timeout: who it is, without its
// backends (which a host older than ?brief=1 adds anyway).
func (c *Client) Ping(ctx context.Context, timeout time.Duration) (info api.HostInfo, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return info, c.do(ctx, "GET", "/v1/host?brief=1", nil, &info)
}

func (c *Client) Host(ctx context.Context) (info api.HostInfo, err error) {
	return info, c.do(ctx, "GET", "/v1/host", nil, &info)
}

func (c *Client) List(ctx context.Context) (vms []api.VM, err error) {
	return vms, c.do(ctx, "GET", "/v1/vms", nil, &vms)
}

func (c *Client) Get(ctx context.Context, name string) (v api.VM, err error) {
	return v, c.do(ctx, "GET", "/v1/vms/"+url.PathEscape(name), nil, &v)
}

// NIC is a running VM's network interface: its MAC and the guest's addresses.
func (c *Client) NIC(ctx context.Context, name string) (n api.NIC, err error) {
	return n, c.do(ctx, "GET", "/v1/vms/"+url.PathEscape(name)+"/nic", nil, &n)
}

func (c *Client) Create(ctx context.Context, req api.CreateRequest) (v api.VM, err error) {
	return v, c.do(ctx, "POST", "/v1/vms", req, &v)
}

func (c *Client) Start(ctx context.Context, name string) (v api.VM, err error) {
	return v, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(name)+"/start", nil, &v)
}

// StartWith starts a VM with options (a cold boot that discards a saved state).
func (c *Client) StartWith(ctx context.Context, name string, req api.StartRequest) (v api.VM, err error) {
	return v, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(name)+"/start", req, &v)
}

// Suspend saves a running VM's state and ends it; the next start resumes it.
func (c *Client) Suspend(ctx context.Context, name string) (v api.VM, err error) {
	return v, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(name)+"/suspend", nil, &v)
}

func (c *Client) Stop(ctx context.Context, name string, req api.StopRequest) (v api.VM, err error) {
	return v, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(name)+"/stop", req, &v)
}

func (c *Client) Restart(ctx context.Context, name string, req api.StopRequest) (v api.VM, err error) {
	return v, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(name)+"/restart", req, &v)
}

func (c *Client) Remove(ctx context.Context, name string, force bool) error {
	return c.do(ctx, "DELETE", "/v1/vms/"+url.PathEscape(name)+"?force="+strconv.FormatBool(force), nil, nil)
}

func (c *Client) SSHInfo(ctx context.Context, name string) (info api.SSHInfo, err error) {
	return info, c.do(ctx, "GET", "/v1/vms/"+url.PathEscape(name)+"/ssh", nil, &info)
}

func (c *Client) Images(ctx context.Context) (imgs []api.Image, err error) {
	return imgs, c.do(ctx, "GET", "/v1/images", nil, &imgs)
}

// Logs copies the serial console log to w; with follow it keeps copying until ctx ends.
func (c *Client) Logs(ctx context.Context, name string, follow bool, w io.Writer) error {
	resp, err := c.send(ctx, "GET", "/v1/vms/"+url.PathEscape(name)+"/logs?follow="+strconv.FormatBool(follow), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Events streams host events to fn until ctx ends or the host goes away.
func (c *Client) Events(ctx context.Context, fn func(api.Event)) error {
	resp, err := c.send(ctx, "GET", "/v1/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev api.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		fn(ev)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad response: %w", method, path, err)
	}
	return nil
}

// send performs a request and turns non-2xx responses into *api.Error.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+api.HostName+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// Whether a connection was made tells a host that is not there from one
	// that failed while answering (it crashed, or a bug cut the answer).
	var connected atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
	}))
	resp, err := c.http.Do(req)
	if err != nil {
		if connected.Load() {
			if ctx.Err() != nil { // the caller's deadline or cancel, not the host's fault
				return nil, ctx.Err()
			}
			return nil, &HostFailedError{Socket: c.socket, What: method + " " + path, Err: err, Remote: c.remote}
		}
		return nil, c.hostError(err)
	}
	if rev := resp.Header.Get(api.RevisionHeader); rev != strconv.Itoa(api.Revision) {
		resp.Body.Close()
		return nil, c.revisionError(ctx, rev)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, responseError(method, path, resp)
	}
	return resp, nil
}

// responseError turns a non-2xx response into *api.Error; a 404 without the
// API's error body is a route the host does not have (ErrOlderHost).
func responseError(method, path string, resp *http.Response) error {
	var eb api.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s: %w", method, path, ErrOlderHost)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return &api.Error{Code: eb.Code, Msg: eb.Error}
}

// VersionError means the host speaks another API revision than this client:
// the host was started by another fvm (an upgrade left the old host running).
type VersionError struct {
	HostVersion   string // "" when the host did not say
	HostRevision  int    // 0: from before the handshake
	HostPID       int
	ClientVersion string
	// Remote names the host's machine when it is not this one.
	Remote string
}

func (e *VersionError) Error() string {
	if e.Remote != "" {
		return e.remoteError()
	}
	host := "an older fvm"
	if e.HostRevision > api.Revision {
		host = "a newer fvm"
	}
	if e.HostVersion != "" {
		host += " (" + e.HostVersion + ")"
	}
	me := "this fvm"
	if e.ClientVersion != "" {
		me += " (" + e.ClientVersion + ")"
	}
	stop := "stop it (see `fvm check` for its pid)"
	if e.HostPID > 0 {
		stop = fmt.Sprintf("stop it with `kill %d`", e.HostPID)
	}
	return fmt.Sprintf("the running fvm host is %s, API revision %d; %s speaks revision %d: %s and run your command again, which starts a host of this fvm (VMs keep running and are re-adopted)",
		host, e.HostRevision, me, api.Revision, stop)
}

// revisionError describes a host of another revision, asking it who it is
// (GET /v1/host has answered alike in every revision).
func (c *Client) revisionError(ctx context.Context, rev string) error {
	e := &VersionError{ClientVersion: c.Version}
	if c.remote {
		e.Remote = c.socket
	}
	e.HostRevision, _ = strconv.Atoi(rev)
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+api.HostName+"/v1/host?brief=1", nil)
	if err == nil {
		if resp, err := c.http.Do(req); err == nil {
			var info api.HostInfo
			if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info) == nil {
				e.HostVersion, e.HostPID = info.Version, info.PID
			}
			resp.Body.Close()
		}
	}
	return e
}

// HostFailedError means the host took the request but failed before answering
// it: it crashed, or was killed, while working on it.
type HostFailedError struct {
	Socket string
	What   string
	Err    error
	Remote bool
}

func (e *HostFailedError) Error() string {
	if e.Remote {
		return fmt.Sprintf("the host on %s failed while answering %s: %v (the connection was lost, or the host there crashed: see daemon.log in its run directory there)", e.Socket, e.What, e.Err)
	}
	return fmt.Sprintf("the host failed while answering %s: %v (it may have crashed: see daemon.log beside %s; the next command starts it again)", e.What, e.Err, e.Socket)
}
func (e *HostFailedError) Unwrap() error { return e.Err }

// HostError means the host could not be reached at all.
type HostError struct {
	Socket string
	Err    error
	Remote bool
}

// diagnosed is an error that says all there is to say (core/remote's, which
// name the server and the fix): it is shown as it is.
type diagnosed interface {
	error
	Diagnosed() bool
}

func (e *HostError) Error() string {
	var d diagnosed
	if errors.As(e.Err, &d) && d.Diagnosed() {
		return d.Error()
	}
	if e.Remote {
		return fmt.Sprintf("cannot reach the fvm host on %s: %v", e.Socket, e.Err)
	}
	return fmt.Sprintf("cannot reach the fvm host on %s: %v (start it with `fvm daemon`; its log is daemon.log beside the socket)", e.Socket, e.Err)
}
func (e *HostError) Unwrap() error { return e.Err }

func (c *Client) hostError(err error) error {
	return &HostError{Socket: c.socket, Err: err, Remote: c.remote}
}

// remoteError says which side to upgrade when the host is on another machine.
func (e *VersionError) remoteError() string {
	them, me := "fvm", "this fvm"
	if e.HostVersion != "" {
		them += " " + e.HostVersion
	}
	if e.ClientVersion != "" {
		me += " (" + e.ClientVersion + ")"
	}
	if e.HostRevision > api.Revision {
		return fmt.Sprintf("the fvm host on %s runs %s, API revision %d; %s speaks revision %d: upgrade fvm on this machine",
			e.Remote, them, e.HostRevision, me, api.Revision)
	}
	stop := "stop its old host there"
	if e.HostPID > 0 {
		stop = fmt.Sprintf("stop its old host there (`kill %d` on that machine; VMs keep running)", e.HostPID)
	}
	return fmt.Sprintf("the fvm host on %s runs %s, API revision %d; %s speaks revision %d: upgrade fvm on %s, %s, and run your command again",
		e.Remote, them, e.HostRevision, me, api.Revision, e.Remote, stop)
}
