package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/fvmhq/fvm/core/api"
)

// Upload streams size bytes from r to the host, which keeps them under their
// digest for a later request (api.ImportRequest.Upload,
// api.CreateRequest.ISOUpload). The SHA-256 is computed as the bytes go and
// sent last, as a trailer: the host compares it with what arrived and keeps
// nothing of an upload that was cut or altered. progress (when not nil) is
// called with the bytes sent so far.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, size int64, progress func(done int64)) (api.Upload, error) {
	h := sha256.New()
	body := &hashingReader{r: r, h: h, size: size, progress: progress}
	path := api.UploadsPath + "?name=" + url.QueryEscape(name)
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+api.HostName+path, body)
	if err != nil {
		return api.Upload{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(api.UploadSizeHeader, strconv.FormatInt(size, 10))
	req.ContentLength = -1 // chunked: the digest follows the bytes, as a trailer
	req.Trailer = http.Header{api.UploadDigestHeader: nil}
	body.trailer = req.Trailer
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return api.Upload{}, ctx.Err()
		}
		if body.err != nil {
			return api.Upload{}, fmt.Errorf("upload %s: reading it here: %w", name, body.err)
		}
		return api.Upload{}, &HostFailedError{Socket: c.socket, What: "upload of " + name, Err: err, Remote: c.remote}
	}
	defer resp.Body.Close()
	if rev := resp.Header.Get(api.RevisionHeader); rev != strconv.Itoa(api.Revision) {
		return api.Upload{}, c.revisionError(ctx, rev)
	}
	if resp.StatusCode/100 != 2 {
		return api.Upload{}, responseError("POST", api.UploadsPath, resp)
	}
	var up api.Upload
	if err := jsonDecode(resp.Body, &up); err != nil {
		return api.Upload{}, fmt.Errorf("upload %s: bad response: %w", name, err)
	}
	if want := "sha256:" + hex.EncodeToString(h.Sum(nil)); up.Digest != want {
		return api.Upload{}, fmt.Errorf("upload %s: the host kept %s, not the %s sent", name, up.Digest, want)
	}
	return up, nil
}

// hashingReader hashes and counts what it reads and, at the end, puts the
// digest into the request's trailer (read by net/http after the body's EOF).
type hashingReader struct {
	r        io.Reader
	h        hash.Hash
	n, size  int64
	progress func(int64)
	trailer  http.Header
	err      error // a read error of the client's file
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	if hr.progress != nil && n > 0 {
		hr.progress(hr.n)
	}
	if err == io.EOF {
		hr.trailer.Set(api.UploadDigestHeader, "sha256:"+hex.EncodeToString(hr.h.Sum(nil)))
	} else if err != nil {
		hr.err = err
	}
	return n, err
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(v) }
