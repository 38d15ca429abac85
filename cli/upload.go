package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/vm"
)

// A path on the command line names a file of the machine it was typed on.
// The host of this machine opens such a path itself (once, through its
// checks: image.OpenInput), which costs no copy beyond the one into its cache
// and leaves an installer ISO where it is; a host on another machine cannot
// see it, so the file is read here and uploaded (streamed, hashed here and
// checked there; a cut upload leaves nothing).

// upload streams a file of this machine to the host, with a progress bar.
func (a *app) upload(ctx context.Context, c *client.Client, path, what string) (api.Upload, error) {
	f, err := os.Open(path)
	if err != nil {
		return api.Upload{}, fmt.Errorf("%s %s: %w", what, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return api.Upload{}, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !st.Mode().IsRegular() {
		return api.Upload{}, fmt.Errorf("%s %s is not a regular file: give the path of a file", what, path)
	}
	bar := a.copyBar(false)
	t0 := time.Now()
	up, err := c.Upload(ctx, filepath.Base(path), f, st.Size(), func(done int64) { bar.update(done, st.Size()) })
	bar.finish()
	if err != nil {
		return api.Upload{}, fmt.Errorf("%s %s: %w", what, path, err)
	}
	a.phase("Uploaded %s to %s (%s, %s) in %s", filepath.Base(path), a.hostName(), vm.FormatSize(up.Size), shortDigest(up.Digest), since(t0))
	return up, nil
}

// importFile caches a disk file of this machine on a remote host as an image
// (named name, or after the file when empty).
func (a *app) importFile(ctx context.Context, c *client.Client, path string, req api.ImportRequest) (api.Image, error) {
	up, err := a.upload(ctx, c, path, "image file")
	if err != nil {
		return api.Image{}, err
	}
	req.Upload, req.Source = up.Digest, filepath.Base(path)
	return a.importImage(ctx, c, req)
}

// uploadISO sends the installer ISO of a create to a remote host, which
// installs from its copy (kept while VMs name it; `fvm image prune` removes
// it after).
func (a *app) uploadISO(ctx context.Context, c *client.Client, req *api.CreateRequest) error {
	up, err := a.upload(ctx, c, req.Spec.ISO, "--iso")
	if err != nil {
		return err
	}
	req.ISOUpload, req.Spec.ISO = up.Digest, ""
	return nil
}
