package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// PullImage pulls a catalog image, calling progress (when not nil) for each
// progress event of the stream, and returns the cached image.
func (c *Client) PullImage(ctx context.Context, req api.PullRequest, progress func(api.Event)) (api.Image, error) {
	return c.stream(ctx, "/v1/images/pull", req, progress)
}

// ImportImage caches a disk file or URL under a name, with progress as PullImage.
func (c *Client) ImportImage(ctx context.Context, req api.ImportRequest, progress func(api.Event)) (api.Image, error) {
	return c.stream(ctx, "/v1/images/import", req, progress)
}

// RemoveImage removes a local image name, or the cached builds of a catalog
// reference (all arches when arch is empty), and returns what it removed.
func (c *Client) RemoveImage(ctx context.Context, name string, arch vm.Arch) (removed []api.Image, err error) {
	p := "/v1/images/" + url.PathEscape(name)
	if arch != "" {
		p += "?arch=" + url.QueryEscape(string(arch))
	}
	return removed, c.do(ctx, "DELETE", p, nil, &removed)
}

// WarmImage makes (or finds) the warm snapshot of an image for VMs of the
// request's shape; it returns once the snapshot exists (a VM boot or so).
func (c *Client) WarmImage(ctx context.Context, req api.WarmRequest) (s api.WarmSnapshot, err error) {
	return s, c.do(ctx, "POST", "/v1/images/warm", req, &s)
}

// PruneImages deletes cached bases that no image and no VM uses.
func (c *Client) PruneImages(ctx context.Context) (res api.PruneResult, err error) {
	return res, c.do(ctx, "POST", "/v1/images/prune", nil, &res)
}

// CheckUpdates asks the host to compare every cached catalog image with upstream.
func (c *Client) CheckUpdates(ctx context.Context, req api.UpdatesRequest) (rows []api.ImageUpdate, err error) {
	return rows, c.do(ctx, "POST", "/v1/images/updates", req, &rows)
}

// Catalog lists the images that can be pulled.
func (c *Client) Catalog(ctx context.Context) (items []api.CatalogItem, err error) {
	return items, c.do(ctx, "GET", "/v1/images/catalog", nil, &items)
}

// stream reads the api.PullLine NDJSON stream of a pull or import.
func (c *Client) stream(ctx context.Context, path string, body any, progress func(api.Event)) (api.Image, error) {
	resp, err := c.send(ctx, "POST", path, body)
	if err != nil {
		return api.Image{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l api.PullLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return api.Image{}, fmt.Errorf("POST %s: bad stream line: %w", path, err)
		}
		switch {
		case l.Error != nil:
			return api.Image{}, &api.Error{Code: l.Error.Code, Msg: l.Error.Error}
		case l.Image != nil:
			return *l.Image, nil
		case l.Progress != nil && progress != nil:
			progress(*l.Progress)
		}
	}
	if err := ctx.Err(); err != nil {
		return api.Image{}, err
	}
	if err := sc.Err(); err != nil {
		return api.Image{}, &HostFailedError{Socket: c.socket, What: "POST " + path, Err: err, Remote: c.remote}
	}
	return api.Image{}, &HostFailedError{Socket: c.socket, What: "POST " + path, Err: errors.New("the stream ended without a result"), Remote: c.remote}
}
