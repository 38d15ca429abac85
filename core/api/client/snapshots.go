package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/fvmhq/fvm/core/api"
)

// CreateSnapshot takes a snapshot of a VM (tag "" for the time): a running
// VM's memory and disk with a short pause, a stopped one's disk.
func (c *Client) CreateSnapshot(ctx context.Context, name, tag string) (s api.Snapshot, err error) {
	return s, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(name)+"/snapshots", api.SnapshotRequest{Tag: tag}, &s)
}

// Snapshots lists a VM's snapshots, oldest first.
func (c *Client) Snapshots(ctx context.Context, name string) (out []api.Snapshot, err error) {
	return out, c.do(ctx, "GET", "/v1/vms/"+url.PathEscape(name)+"/snapshots", nil, &out)
}

// RemoveSnapshot deletes a snapshot; the answer says what of its disk stays, and why.
func (c *Client) RemoveSnapshot(ctx context.Context, name, tag string) (r api.Removed, err error) {
	return r, c.do(ctx, "DELETE", "/v1/vms/"+url.PathEscape(name)+"/snapshots/"+url.PathEscape(tag), nil, &r)
}

// RestoreSnapshot brings a VM back to a snapshot; a running VM needs force.
func (c *Client) RestoreSnapshot(ctx context.Context, name, tag string, force bool) (v api.VM, err error) {
	return v, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(name)+"/snapshots/"+url.PathEscape(tag)+"/restore", api.RestoreRequest{Force: force}, &v)
}

// Clone makes a VM from a VM's snapshot (req.Tag) or one taken now, and starts it.
func (c *Client) Clone(ctx context.Context, src string, req api.CloneRequest) (v api.VM, err error) {
	return v, c.do(ctx, "POST", "/v1/vms/"+url.PathEscape(src)+"/clone", req, &v)
}

// RemoveVM removes a VM (a running one with force) and says what it kept of
// what the VM read, and why.
func (c *Client) RemoveVM(ctx context.Context, name string, force bool) (r api.Removed, err error) {
	return r, c.do(ctx, "DELETE", "/v1/vms/"+url.PathEscape(name)+"?force="+strconv.FormatBool(force), nil, &r)
}
