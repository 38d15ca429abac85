package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/fvmhq/fvm/core/vm"
)

// Source is what upstream offers now for a catalog entry: the concrete file,
// its checksum from the index, and the build it belongs to.
type Source struct {
	Ref         string  `json:"ref"` // e.g. debian:13
	Arch        vm.Arch `json:"arch"`
	URL         string  `json:"url"`
	ChecksumURL string  `json:"checksumURL"`
	File        string  `json:"file"`
	Digest      Digest  `json:"digest"` // of the file at URL, as upstream's index lists it
	// Build identifies the upstream build (Debian "20250210-2019", Ubuntu
	// "20250430", Fedora respin "1.7", Alpine "3.22.2"); empty when only a
	// "latest" alias was reachable.
	Build string `json:"build,omitempty"`
	// Trust says what authenticated Digest (Trust.TrustText).
	Trust string `json:"trust,omitempty"`
	// ImageSig, set where upstream signs the image itself, verifies the
	// downloaded file (before it is used) against the signature read with the index.
	ImageSig func(path string) error `json:"-"`
}

// maxIndexSize bounds what is read of a checksum index or directory listing.
const maxIndexSize = 8 << 20

// Locate finds the current upstream file for e: it reads the directory
// listing when the release has one (dated builds, respins, patch versions),
// then the checksum index, and falls back to the release's "latest" location
// when the listing or the dated build is unavailable (e.g. a mirror without
// directory indexes).
func Locate(ctx context.Context, client *http.Client, e Entry) (Source, error) {
	return LocateWith(ctx, client, e, EmbeddedKeyring)
}

// LocateWith is Locate with the keys that verify signatures taken from keys.
func LocateWith(ctx context.Context, client *http.Client, e Entry, keys KeySource) (Source, error) {
	client = safeClient(client)
	r := e.Release
	if r.List == nil {
		return locateAt(ctx, client, e, r.location(false), "", "", keys)
	}
	name, build, err := newestListed(ctx, client, e)
	if err == nil {
		src, lerr := locateAt(ctx, client, e, r.location(false), name, build, keys)
		if lerr == nil || errors.Is(lerr, ErrBadSignature) { // a forgery is no reason to try elsewhere
			return src, lerr
		}
		err = lerr
	}
	if r.Fallback == nil {
		return Source{}, fmt.Errorf("%s (%s): %w", e.Ref(), e.Arch, err)
	}
	src, ferr := locateAt(ctx, client, e, r.location(true), "", "", keys)
	if ferr != nil {
		return Source{}, fmt.Errorf("%s (%s): %w; fallback: %w", e.Ref(), e.Arch, err, ferr)
	}
	return src, nil
}

// newestListed reads the release's listing and returns the newest matching entry.
func newestListed(ctx context.Context, client *http.Client, e Entry) (name, build string, err error) {
	l := e.Release.List
	re, err := regexp.Compile(strings.ReplaceAll(l.Match, "{arch}", regexp.QuoteMeta(e.UpstreamArch)))
	if err != nil {
		return "", "", fmt.Errorf("catalog pattern %q: %w", l.Match, err)
	}
	dirURL := e.Mirror + "/" + expand(l.Dir, e, nil) + "/"
	body, err := getSmall(ctx, client, dirURL)
	if err != nil {
		return "", "", err
	}
	for _, n := range ParseListing(body) {
		m := re.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		n = strings.TrimSuffix(n, "/")
		if name == "" || naturalLess(name, n) {
			name, build = n, n
			if len(m) > 1 && m[1] != "" {
				build = m[1]
			}
		}
	}
	if name == "" {
		return "", "", fmt.Errorf("%s: no entry matches %s", dirURL, re)
	}
	return name, build, nil
}

func locateAt(ctx context.Context, client *http.Client, e Entry, loc Location, name, build string, keys KeySource) (Source, error) {
	vars := map[string]string{"{name}": name, "{build}": build}
	relDir := expand(loc.Dir, e, vars)
	dir := e.Mirror + "/" + relDir
	file := expand(loc.File, e, vars)
	vars["{file}"] = file
	sums := expand(loc.Checksums, e, vars)
	t := e.Trust
	sumsDir, ictx := dir, ctx
	if t.Signed == "" && t.Index != "" {
		// Nothing signs the index: only the distribution's own host vouches for it.
		sumsDir, ictx = strings.TrimRight(t.Index, "/")+"/"+relDir, sameHostOnly(ctx)
	}
	src := Source{
		Ref: e.Ref(), Arch: e.Arch, File: file, Build: build, Trust: t.TrustText(e.Mirror),
		URL: dir + "/" + url.PathEscape(file), ChecksumURL: sumsDir + "/" + url.PathEscape(sums),
	}
	body, err := getSmall(ictx, client, src.ChecksumURL)
	if err != nil {
		return Source{}, err
	}
	if body, err = authenticate(ctx, client, t, keys, dir, sums, file, body, &src); err != nil {
		return Source{}, fmt.Errorf("%s (%s): %w", e.Ref(), e.Arch, err)
	}
	ix := ParseIndex(body)
	d, err := ix.Lookup(file)
	if errors.Is(err, ErrNotListed) && strings.HasPrefix(sums, file) && len(ix.Entries) == 1 {
		// A per-file checksum (x.qcow2.SHA256) describes that file whatever name it
		// carries inside: Arch's "latest" alias lists the dated name.
		d, err = ix.Entries[0].Digest, nil
	}
	if err != nil {
		return Source{}, fmt.Errorf("%s: %w", src.ChecksumURL, err)
	}
	src.Digest = d
	return src, nil
}

// authenticate verifies what the distro signs and returns the index text to
// trust: for a clearsigned index only its signed part. For a signed image it
// sets src.ImageSig, which the download runs on the finished file.
func authenticate(ctx context.Context, client *http.Client, t Trust, keys KeySource, dir, sums, file string, body []byte, src *Source) ([]byte, error) {
	if t.Signed == "" {
		return body, nil
	}
	kr, err := keys(t.Keys)
	if err != nil {
		return nil, err
	}
	sigName := strings.NewReplacer("{checksums}", sums, "{file}", file).Replace(t.Sig)
	sigURL := dir + "/" + url.PathEscape(sigName)
	switch t.Signed {
	case SignedIndexClearsigned:
		signed, err := VerifyClearsigned(kr, body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (against the embedded %s keys)", src.ChecksumURL, err, t.Keys)
		}
		return signed, nil
	case SignedIndexDetached:
		sig, err := getSmall(ctx, client, sigURL)
		if err != nil {
			return nil, fmt.Errorf("signature of the checksum index: %w", err)
		}
		if err := VerifyDetached(kr, bytes.NewReader(body), sig); err != nil {
			return nil, fmt.Errorf("%s: %w (against the embedded %s keys)", sigURL, err, t.Keys)
		}
		return body, nil
	case SignedImage:
		sig, err := getSmall(ctx, client, sigURL)
		if err != nil {
			return nil, fmt.Errorf("signature of the image: %w", err)
		}
		src.ImageSig = func(path string) error {
			if err := verifyFile(kr, path, sig); err != nil {
				return fmt.Errorf("%s: %w (against the embedded %s keys)", sigURL, err, t.Keys)
			}
			return nil
		}
		return body, nil
	}
	return nil, fmt.Errorf("unknown trust %q", t.Signed)
}

func expand(t string, e Entry, vars map[string]string) string {
	t = strings.ReplaceAll(t, "{arch}", e.UpstreamArch)
	for k, v := range vars {
		t = strings.ReplaceAll(t, k, v)
	}
	return t
}

// getSmall fetches a checksum index or listing, bounded in size.
func getSmall(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := safeClient(client).Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(b) > maxIndexSize {
		return nil, fmt.Errorf("GET %s: larger than %d bytes, not an index", u, maxIndexSize)
	}
	return b, nil
}

var hrefRE = regexp.MustCompile(`(?i)href\s*=\s*(?:"([^"]*)"|'([^']*)')`)

// ParseListing extracts entry names from a directory index: the links of an
// HTML autoindex (Apache, nginx, Go's FileServer), or whitespace-separated names
// of a plain-text listing. Directories keep their trailing slash. Names that
// could step outside the directory are dropped.
func ParseListing(body []byte) []string {
	var raw []string
	for _, m := range hrefRE.FindAllSubmatch(body, -1) {
		raw = append(raw, string(m[1])+string(m[2]))
	}
	if len(raw) == 0 && !strings.Contains(strings.ToLower(string(body[:min(len(body), 512)])), "<html") {
		raw = strings.Fields(string(body))
	}
	seen := map[string]bool{}
	var out []string
	for _, h := range raw {
		n := listingName(h)
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func listingName(h string) string {
	if i := strings.IndexAny(h, "?#"); i >= 0 {
		h = h[:i]
	}
	if u, err := url.Parse(h); err == nil && (u.IsAbs() || strings.HasPrefix(h, "/")) {
		h = u.Path
	} else if p, err := url.PathUnescape(h); err == nil {
		h = p
	}
	dir := strings.HasSuffix(h, "/")
	h = path.Base(strings.TrimSuffix(h, "/"))
	if h == "" || h == "." || h == ".." || h == "/" || strings.ContainsAny(h, "/\\\x00\r\n") {
		return ""
	}
	if dir {
		h += "/"
	}
	return h
}

// naturalLess orders names with digit runs compared as numbers, so
// 3.22.10 sorts after 3.22.9 and release-20240423.1 after release-20240423.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		switch {
		case da && db:
			na, ra := digitRun(a)
			nb, rb := digitRun(b)
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			a, b = ra, rb
		case a[0] != b[0]:
			return a[0] < b[0]
		default:
			a, b = a[1:], b[1:]
		}
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digitRun(s string) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// Available reports whether upstream has a newer build than the cached one.
type Available struct {
	Ref          string  `json:"ref"`
	Arch         vm.Arch `json:"arch"`
	CachedBuild  string  `json:"cachedBuild,omitempty"`
	CachedDigest Digest  `json:"cachedDigest"`
	Latest       Source  `json:"latest"`
	Newer        bool    `json:"newer"`
}

// CheckUpdate asks upstream what it offers now for e and compares it with the
// cached build: newer when the checksum differs, unless both builds are known
// and upstream's is older (a lagging mirror). cached must be the upstream
// digest recorded at pull time (Source.Digest), not one of a decompressed file.
func CheckUpdate(ctx context.Context, client *http.Client, e Entry, cached Digest, cachedBuild string) (Available, error) {
	return CheckUpdateWith(ctx, client, e, cached, cachedBuild, EmbeddedKeyring)
}

// CheckUpdateWith is CheckUpdate with the keys taken from keys.
func CheckUpdateWith(ctx context.Context, client *http.Client, e Entry, cached Digest, cachedBuild string, keys KeySource) (Available, error) {
	latest, err := LocateWith(ctx, client, e, keys)
	if err != nil {
		return Available{}, fmt.Errorf("check for updates: %w", err)
	}
	a := Available{Ref: e.Ref(), Arch: e.Arch, CachedBuild: cachedBuild, CachedDigest: cached, Latest: latest}
	switch {
	case cached.IsZero():
		a.Newer = true
	case latest.Digest.Equal(cached):
		a.Newer = false
	case latest.Build != "" && cachedBuild != "" && !naturalLess(cachedBuild, latest.Build):
		a.Newer = false
	default:
		a.Newer = true
	}
	return a, nil
}
