package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/fvmhq/fvm/core/api"
)

// Display asks the host to show a VM's screen: in its own window (Native), or
// as the web console page at URL, for the caller to open.
func (c *Client) Display(ctx context.Context, name string, req api.DisplayRequest) (d api.Display, err error) {
	return d, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(name)+"/display", req, &d)
}

// Screenshot returns a running VM's screen as PNG.
func (c *Client) Screenshot(ctx context.Context, name string) ([]byte, error) {
	resp, err := c.send(ctx, "GET", "/v1/vms/"+url.PathEscape(name)+"/screenshot", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(resp.Body, 512<<20)); err != nil {
		return nil, fmt.Errorf("screenshot of %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// Console attaches to a running VM's serial console: reads are the guest's
// output (tail lines of earlier output first), writes are typed into it;
// Close detaches. Reads end with io.EOF when the VM stops or the host goes.
func (c *Client) Console(ctx context.Context, name string, tail int) (io.ReadWriteCloser, error) {
	path := "/v1/vms/" + url.PathEscape(name) + "/console?tail=" + strconv.Itoa(tail)
	req, err := http.NewRequestWithContext(ctx, "GET", "http://fvm"+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.ConsoleProtocol)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.hostError(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		if resp.StatusCode/100 == 2 {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: the host did not switch to the console stream (%s): restart it (an older fvm host?)", path, resp.Status)
		}
		defer resp.Body.Close()
		return nil, responseError("GET", path, resp)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: the upgraded connection is not writable", path)
	}
	return rwc, nil
}
