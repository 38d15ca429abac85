package image

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/store"
)

const (
	userAgent = "fvm (+https://github.com/fvmhq/fvm)"
	// PartSuffix marks a download in progress; such files are never used as images.
	PartSuffix = ".part"
	// StalePartAge is how old an untouched .part must be before it is removed.
	StalePartAge = 24 * time.Hour

	defaultStallTimeout = 60 * time.Second
	maxAttempts         = 6
	lockPoll            = 100 * time.Millisecond
)

// retryBackoff grows linearly with consecutive failures (a var for tests).
var retryBackoff = 300 * time.Millisecond

// DefaultHTTPClient has no overall timeout (images are large) but bounds the
// wait for response headers; Fetch bounds stalls in the body itself.
func DefaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}
}

// FetchRequest describes one verified download.
type FetchRequest struct {
	URL string
	// Dest is the final path; its directory holds the .part and lock files. An
	// existing Dest is taken as done, so name it by the expected digest (a new
	// upstream build then never matches an old file).
	Dest   string
	Digest Digest // expected checksum of the bytes at URL (before decompression)
	// Lock is the lock file that makes concurrent fetches of Dest download once;
	// default Dest + ".lock".
	Lock string
	// Progress is called as bytes arrive; total is -1 when the server does not say.
	Progress   func(done, total int64)
	HTTPClient *http.Client
	// StallTimeout aborts an attempt that receives nothing for this long (default 60s).
	StallTimeout time.Duration
	// Check, if set, verifies the verified download further before it is used
	// (an image's own signature); a failure deletes it.
	Check func(path string) error
	// MaxUnpacked caps the decompressed size of compressed content that
	// declares none itself (default DefaultMaxUnpacked).
	MaxUnpacked int64
}

// DefaultMaxUnpacked bounds decompression when the content declares no size:
// no cloud image comes near it; a decompression bomb stops there.
const DefaultMaxUnpacked = 64 << 30

// VerifiedSuffix marks a compressed download that passed its checksum but
// was not decompressed yet (or failed to be): a retry uses it without
// downloading again.
const VerifiedSuffix = ".verified"

// FetchResult describes the file at Dest.
type FetchResult struct {
	Path       string `json:"path"`
	Digest     Digest `json:"digest"`     // the verified upstream digest
	FileDigest Digest `json:"fileDigest"` // SHA-256 of the file at Path, whatever upstream's algorithm
	Size       int64  `json:"size"`
	Info       Info   `json:"info"`
	Downloaded bool   `json:"downloaded"` // false when Dest already existed
	Resumed    bool   `json:"resumed"`    // a previous partial download was continued
	// Decompressed names the compression removed after verification, if any.
	Decompressed Format `json:"decompressed,omitempty"`
}

// ErrChecksumMismatch means the downloaded bytes do not match the index.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// Fetch downloads URL to Dest, verified against Digest. It streams into
// Dest.part while hashing, resumes an existing part with an HTTP Range request
// (re-hashing what is on disk first), verifies the whole file, refuses unsafe
// qcow2 images, decompresses gzip/xz/zstd content, and renames into place, so
// nothing unverified ever sits under Dest. A lock file makes concurrent calls
// for one Dest download once: the others wait and return the finished file.
func Fetch(ctx context.Context, req FetchRequest) (FetchResult, error) {
	if req.URL == "" || req.Dest == "" {
		return FetchResult{}, errors.New("fetch: URL and Dest are required")
	}
	if err := req.Digest.Validate(); err != nil {
		return FetchResult{}, fmt.Errorf("fetch %q: expected checksum: %w", req.URL, err)
	}
	if req.Lock == "" {
		req.Lock = req.Dest + ".lock"
	}
	if req.HTTPClient == nil {
		req.HTTPClient = DefaultHTTPClient()
	}
	if req.StallTimeout <= 0 {
		req.StallTimeout = defaultStallTimeout
	}
	if req.MaxUnpacked <= 0 {
		req.MaxUnpacked = DefaultMaxUnpacked
	}
	req.HTTPClient = safeClient(req.HTTPClient)
	dir := filepath.Dir(req.Dest)
	if err := store.MkdirPrivate(dir); err != nil {
		return FetchResult{}, fmt.Errorf("fetch %q: %w", req.URL, err)
	}
	CleanStaleParts(dir, StalePartAge)

	// Wait for the lock, or for whoever holds it to finish the file.
	var lock *store.FileLock
	for {
		if r, ok := existing(req); ok {
			return r, nil
		}
		l, err := store.TryLock(req.Lock)
		if err == nil {
			lock = l
			break
		}
		if !errors.Is(err, store.ErrLocked) {
			return FetchResult{}, fmt.Errorf("fetch %q: lock %s: %w", req.URL, req.Lock, err)
		}
		select {
		case <-ctx.Done():
			return FetchResult{}, fmt.Errorf("fetch %q: waiting for another download of it: %w", req.URL, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	defer lock.Unlock()
	if r, ok := existing(req); ok { // finished between our check and the lock
		return r, nil
	}

	f := &fetcher{req: req, part: req.Dest + PartSuffix}
	if f.verifiedKept() { // an earlier attempt verified it, then failed to unpack it
		return f.finish(ctx)
	}
	if err := f.download(ctx); err != nil {
		return FetchResult{}, err
	}
	return f.finish(ctx)
}

// verifiedKept reports whether a compressed download kept by an earlier
// attempt (VerifiedSuffix) still matches the digest; it becomes the part.
func (f *fetcher) verifiedKept() bool {
	kept := f.req.Dest + VerifiedSuffix
	fh, _, err := store.OpenRegular(kept)
	if err != nil {
		return false
	}
	defer fh.Close()
	f.resetSums()
	if _, err := io.Copy(f.hashWriter(), fh); err != nil || !hexOf(f.req.Digest.Algo, f.sum).Equal(f.req.Digest) {
		os.Remove(kept)
		return false
	}
	return os.Rename(kept, f.part) == nil
}

// existing describes a finished Dest (it only ever appears by rename after
// verification), hashing it so callers get the same result as the downloader.
func existing(req FetchRequest) (FetchResult, bool) {
	fh, st, err := store.OpenRegular(req.Dest)
	if err != nil {
		return FetchResult{}, false
	}
	defer fh.Close()
	h := SHA256.NewHash()
	if _, err := io.Copy(h, fh); err != nil {
		return FetchResult{}, false
	}
	info, _ := Inspect(req.Dest)
	return FetchResult{Path: req.Dest, Digest: req.Digest, FileDigest: hexOf(SHA256, h), Size: st.Size(), Info: info}, true
}

type fetcher struct {
	req     FetchRequest
	part    string
	sum     hash.Hash // upstream's algorithm, checked against req.Digest
	sum256  hash.Hash // SHA-256 of the same bytes, the cache's naming digest
	resumed bool
}

func (f *fetcher) resetSums() {
	f.sum = f.req.Digest.Algo.NewHash()
	f.sum256 = f.sum
	if f.req.Digest.Algo != SHA256 {
		f.sum256 = SHA256.NewHash()
	}
}

// hashWriter feeds both sums (once when they are the same hash).
func (f *fetcher) hashWriter() io.Writer {
	if f.sum256 == f.sum {
		return f.sum
	}
	return io.MultiWriter(f.sum, f.sum256)
}

// download runs attempts until the part holds a verified copy.
func (f *fetcher) download(ctx context.Context) error {
	restarted := false
	failures := 0
	var best int64 // largest part so far: only growth beyond it counts as progress
	for {
		size, err := f.attempt(ctx)
		if err == nil {
			got := hexOf(f.req.Digest.Algo, f.sum)
			if got.Equal(f.req.Digest) {
				return nil
			}
			os.Remove(f.part)
			if f.resumed && !restarted {
				// The part may predate an upstream rebuild: start over once.
				restarted, f.resumed = true, false
				continue
			}
			return fmt.Errorf("download %q: %w: expected %s, got %s (the file was deleted; try again or use another mirror)",
				f.req.URL, ErrChecksumMismatch, f.req.Digest, got)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("download %q: %w (the partial file is kept and will be resumed)", f.req.URL, ctx.Err())
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			if errors.Is(perm.err, ErrNotDisk) {
				os.Remove(f.part) // never a disk: nothing to resume
			}
			return fmt.Errorf("download %q: %w", f.req.URL, perm.err)
		}
		if size > best {
			// Moving, however slowly: do not count it against the link. A server that
			// ignores Range and cuts at the same point does not grow the part.
			best, failures = size, 0
		}
		failures++
		if failures >= maxAttempts {
			return fmt.Errorf("download %q: %w (gave up after %d attempts; the partial file is kept and will be resumed)", f.req.URL, err, failures)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("download %q: %w", f.req.URL, ctx.Err())
		case <-time.After(time.Duration(failures) * retryBackoff):
		}
	}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

// attempt continues the part from its current size and returns the size it
// reached.
func (f *fetcher) attempt(parent context.Context) (size int64, err error) {
	file, err := os.OpenFile(f.part, os.O_RDWR|os.O_CREATE, store.PrivateFile)
	if err != nil {
		return 0, &permanentError{err}
	}
	// Whatever arrives must start as a disk image (or compressed one): junk is
	// refused after its first bytes, not after the whole transfer.
	head := &diskHead{what: f.req.URL, compressedOK: true}
	defer func() {
		if cerr := file.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	// Re-hash what is already on disk: a resumed download is verified whole.
	f.resetSums()
	hw := f.hashWriter()
	have, err := io.Copy(io.MultiWriter(hw, head), file)
	if errors.Is(err, ErrNotDisk) { // a part of something else (an older build, junk): start over
		if err := f.truncate(file, ""); err != nil {
			return 0, err
		}
		have, head = 0, &diskHead{what: f.req.URL, compressedOK: true}
	} else if err != nil {
		return 0, &permanentError{err}
	}

	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	stall := time.AfterFunc(f.req.StallTimeout, cancel)
	defer stall.Stop()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, f.req.URL, nil)
	if err != nil {
		return have, &permanentError{err}
	}
	hreq.Header.Set("User-Agent", userAgent)
	// identity: never let a transport or server re-encode the bytes we verify.
	hreq.Header.Set("Accept-Encoding", "identity")
	if have > 0 {
		hreq.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	stalled := func(err error) error {
		if ctx.Err() != nil && parent.Err() == nil {
			return fmt.Errorf("no data for %s", f.req.StallTimeout)
		}
		return err
	}
	resp, err := f.req.HTTPClient.Do(hreq)
	if err != nil {
		return have, stalled(err)
	}
	defer resp.Body.Close()

	total := int64(-1)
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			// Not the range we asked for: drop the part and start over.
			return 0, f.truncate(file, "server sent an unexpected range "+resp.Header.Get("Content-Range"))
		}
		total = size
		f.resumed = true
	case resp.StatusCode == http.StatusOK:
		if have > 0 { // the server ignored Range: start over
			if err := f.truncate(file, ""); err != nil {
				return 0, err
			}
			have = 0
			head = &diskHead{what: f.req.URL, compressedOK: true}
		}
		total = resp.ContentLength
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		// The part is already complete (or longer than the file): verify it as is.
		f.resumed = true
		return have, file.Sync()
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return have, fmt.Errorf("server answered %s", resp.Status)
	default:
		return have, &permanentError{fmt.Errorf("server answered %s", resp.Status)}
	}

	if f.req.Progress != nil {
		f.req.Progress(have, total)
	}
	buf := make([]byte, 256<<10)
	done := have
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			stall.Reset(f.req.StallTimeout)
			if _, werr := file.Write(buf[:n]); werr != nil {
				return done, &permanentError{werr}
			}
			hw.Write(buf[:n])
			if _, herr := head.Write(buf[:n]); herr != nil {
				if have > 0 { // perhaps the kept part was another build's: once more from zero
					return 0, f.truncate(file, "the partial download does not start as a disk image: starting over")
				}
				return done, &permanentError{herr}
			}
			done += int64(n)
			if f.req.Progress != nil {
				f.req.Progress(done, total)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return done, fmt.Errorf("transfer interrupted after %d bytes: %w", done, stalled(rerr))
		}
	}
	if total >= 0 && done != total {
		return done, fmt.Errorf("transfer ended at %d of %d bytes", done, total)
	}
	if err := head.End(); err != nil {
		if have > 0 {
			return 0, f.truncate(file, "the partial download does not start as a disk image: starting over")
		}
		return done, &permanentError{err}
	}
	return done, file.Sync()
}

func (f *fetcher) truncate(file *os.File, why string) error {
	if err := file.Truncate(0); err != nil {
		return &permanentError{err}
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return &permanentError{err}
	}
	f.sum.Reset()
	f.sum256.Reset()
	f.resumed = false
	if why != "" {
		return errors.New(why)
	}
	return nil
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*").
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}
