package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/stream"
)

// ErrOlderHost means the host predates the API call (it has no such route):
// the caller may fall back to the older way.
var ErrOlderHost = errors.New("the running fvm host is older than this client")

// Exec starts a command in the VM through the host and returns the stream of
// its stdin, stdout, stderr, resizes, signals and exit status (api/stream).
func (c *Client) Exec(ctx context.Context, name string, req api.ExecRequest) (*stream.Conn, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	path := "/v1/vms/" + url.PathEscape(name) + "/exec"
	hr, err := http.NewRequestWithContext(ctx, "POST", "http://fvm"+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Connection", "Upgrade")
	hr.Header.Set("Upgrade", stream.Upgrade)
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, c.hostError(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		rwc, ok := resp.Body.(io.ReadWriteCloser)
		if !ok {
			resp.Body.Close()
			return nil, fmt.Errorf("POST %s: the host switched protocols but the connection is not writable", path)
		}
		return stream.New(rwc, nil), nil
	}
	defer resp.Body.Close()
	return nil, responseError("POST", path, resp)
}

// Ports lists a VM's port forwards.
func (c *Client) Ports(ctx context.Context, name string) (ps []api.Port, err error) {
	return ps, c.do(ctx, "GET", "/v1/vms/"+url.PathEscape(name)+"/ports", nil, &ps)
}

// Wait returns once the VM is ready as asked (api.WaitSSH, api.WaitCloudInit).
func (c *Client) Wait(ctx context.Context, name string, req api.WaitRequest) (res api.WaitResult, err error) {
	return res, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(name)+"/wait", req, &res)
}
