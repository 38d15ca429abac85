package image

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"path"
	"strings"
)

// Algo is a checksum algorithm. Only SHA-2 is accepted: MD5 and SHA-1 indexes
// (which some upstreams still publish) do not protect against a hostile mirror.
type Algo string

const (
	SHA256 Algo = "sha256"
	SHA512 Algo = "sha512"
)

// hexLen is the length of a digest in hex characters.
func (a Algo) hexLen() int {
	switch a {
	case SHA256:
		return 64
	case SHA512:
		return 128
	}
	return 0
}

// NewHash returns a fresh hash for the algorithm.
func (a Algo) NewHash() hash.Hash {
	if a == SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

func algoForHexLen(n int) (Algo, bool) {
	switch n {
	case 64:
		return SHA256, true
	case 128:
		return SHA512, true
	}
	return "", false
}

// Digest is an expected or computed checksum.
type Digest struct {
	Algo Algo   `json:"algo"`
	Hex  string `json:"hex"` // lowercase
}

// String formats the digest as "algo:hex", the form --checksum accepts.
func (d Digest) String() string {
	if d.IsZero() {
		return ""
	}
	return string(d.Algo) + ":" + d.Hex
}

// IsZero reports whether d is unset.
func (d Digest) IsZero() bool { return d.Hex == "" }

// Equal compares two digests of the same algorithm.
func (d Digest) Equal(o Digest) bool { return d.Algo == o.Algo && d.Hex == o.Hex }

// Validate checks that the hex has the length its algorithm needs.
func (d Digest) Validate() error {
	n := d.Algo.hexLen()
	if n == 0 {
		return fmt.Errorf("unsupported checksum algorithm %q: use sha256 or sha512", d.Algo)
	}
	if len(d.Hex) != n || !isHex(d.Hex) {
		return fmt.Errorf("%s checksum %q is not %d hex digits", d.Algo, d.Hex, n)
	}
	return nil
}

// ParseDigest parses "sha256:HEX" or "sha512:HEX"; a bare hex string gets its
// algorithm from its length.
func ParseDigest(s string) (Digest, error) {
	s = strings.TrimSpace(s)
	algo, hexs, ok := strings.Cut(s, ":")
	if !ok {
		hexs = algo
		a, ok := algoForHexLen(len(hexs))
		if !ok {
			return Digest{}, fmt.Errorf("checksum %q: write it as sha256:HEX or sha512:HEX", s)
		}
		algo = string(a)
	}
	d := Digest{Algo: Algo(strings.ToLower(algo)), Hex: strings.ToLower(hexs)}
	if err := d.Validate(); err != nil {
		return Digest{}, err
	}
	return d, nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// digestFromHex returns the digest for a hex string whose length names the algorithm.
func digestFromHex(h string) (Digest, bool) {
	a, ok := algoForHexLen(len(h))
	if !ok || !isHex(h) {
		return Digest{}, false
	}
	return Digest{Algo: a, Hex: strings.ToLower(h)}, true
}

// IndexEntry is one line of a checksum index.
type IndexEntry struct {
	Name   string
	Digest Digest
}

// ErrNotListed means the checksum index has no entry for the file.
var ErrNotListed = errors.New("not listed in the checksum index")

// Index is a parsed checksum index (SHA256SUMS, SHA512SUMS, Fedora CHECKSUM, x.SHA256).
type Index struct {
	Entries []IndexEntry
	// Bare is set when the file held nothing but one digest (no name), as some
	// per-file .sha256/.sha512 files do.
	Bare bool
}

// ParseIndex reads any of the supported checksum index styles, line by line,
// skipping lines that match none of them (comments, PGP armour, blank lines).
func ParseIndex(data []byte) *Index {
	ix := &Index{}
	lines := indexLines(data)
	if len(lines) == 1 {
		if d, err := ParseSingle([]byte(lines[0])); err == nil && !strings.ContainsAny(lines[0], " \t") {
			ix.Entries = []IndexEntry{{Digest: d}}
			ix.Bare = true
			return ix
		}
	}
	for _, l := range lines {
		if e, ok := parseBSDLine(l); ok {
			ix.Entries = append(ix.Entries, e)
		} else if e, ok := parseGNULine(l); ok {
			ix.Entries = append(ix.Entries, e)
		}
	}
	return ix
}

// indexLines returns the meaningful lines: trimmed, non-empty, PGP clearsign
// dash-escaping undone and everything from the signature block on dropped.
func indexLines(data []byte) []string {
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.HasPrefix(l, "-----BEGIN PGP SIGNATURE") {
			break
		}
		l = strings.TrimPrefix(l, "- ") // RFC 4880 dash-escaped line
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "-----") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// ParseGNU parses coreutils style lines: "<hex>  <file>" (text mode) or
// "<hex> *<file>" (binary mode), as in Debian's SHA512SUMS and Ubuntu's SHA256SUMS.
func ParseGNU(data []byte) []IndexEntry {
	var out []IndexEntry
	for _, l := range indexLines(data) {
		if e, ok := parseGNULine(l); ok {
			out = append(out, e)
		}
	}
	return out
}

func parseGNULine(l string) (IndexEntry, bool) {
	escaped := strings.HasPrefix(l, `\`) // coreutils escapes names holding \ or newline
	if escaped {
		l = l[1:]
	}
	i := strings.IndexAny(l, " \t")
	if i <= 0 {
		return IndexEntry{}, false
	}
	d, ok := digestFromHex(l[:i])
	if !ok {
		return IndexEntry{}, false
	}
	name := l[i+1:]
	if name != "" && (name[0] == ' ' || name[0] == '*') {
		name = name[1:]
	}
	if escaped {
		name = strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(name)
	}
	if name == "" {
		return IndexEntry{}, false
	}
	return IndexEntry{Name: name, Digest: d}, true
}

// ParseBSD parses BSD tag lines, "SHA256 (file) = <hex>", as in Fedora's
// CHECKSUM files (whose PGP clearsign armour is skipped).
func ParseBSD(data []byte) []IndexEntry {
	var out []IndexEntry
	for _, l := range indexLines(data) {
		if e, ok := parseBSDLine(l); ok {
			out = append(out, e)
		}
	}
	return out
}

func parseBSDLine(l string) (IndexEntry, bool) {
	label, rest, ok := strings.Cut(l, " (")
	if !ok {
		return IndexEntry{}, false
	}
	j := strings.LastIndex(rest, ") = ")
	if j < 0 {
		return IndexEntry{}, false
	}
	name, h := rest[:j], strings.TrimSpace(rest[j+len(") = "):])
	d, ok := digestFromHex(h)
	if !ok || name == "" {
		return IndexEntry{}, false
	}
	// The label must agree with the digest length: "SHA256" with 64 hex digits.
	if want := strings.ReplaceAll(strings.ToLower(label), "-", ""); want != string(d.Algo) {
		return IndexEntry{}, false
	}
	return IndexEntry{Name: name, Digest: d}, true
}

// ParseSingle parses a per-file checksum (Arch's x.qcow2.SHA256, Alpine's
// x.qcow2.sha512): one digest, optionally followed by the file name.
func ParseSingle(data []byte) (Digest, error) {
	lines := indexLines(data)
	if len(lines) != 1 {
		return Digest{}, fmt.Errorf("per-file checksum has %d digest lines, want 1", len(lines))
	}
	if e, ok := parseGNULine(lines[0]); ok {
		return e.Digest, nil
	}
	if e, ok := parseBSDLine(lines[0]); ok {
		return e.Digest, nil
	}
	if d, ok := digestFromHex(lines[0]); ok {
		return d, nil
	}
	return Digest{}, errors.New("per-file checksum holds no sha256 or sha512 digest")
}

// Lookup finds filename in the index. Names are compared exactly, then by base
// name (some indexes list "./images/x"). A bare single digest matches any name:
// such a file describes exactly one image.
func (ix *Index) Lookup(filename string) (Digest, error) {
	if ix.Bare && len(ix.Entries) == 1 {
		return ix.Entries[0].Digest, nil
	}
	var found *IndexEntry
	for i, e := range ix.Entries {
		if e.Name == filename {
			return e.Digest, nil
		}
		if found == nil && path.Base(e.Name) == filename {
			found = &ix.Entries[i]
		}
	}
	if found != nil {
		return found.Digest, nil
	}
	return Digest{}, fmt.Errorf("%s: %w", filename, ErrNotListed)
}

// Names lists the file names in the index, in order.
func (ix *Index) Names() []string {
	out := make([]string, 0, len(ix.Entries))
	for _, e := range ix.Entries {
		if e.Name != "" {
			out = append(out, e.Name)
		}
	}
	return out
}

// Lookup parses index and finds filename in it.
func Lookup(index []byte, filename string) (Digest, error) {
	return ParseIndex(index).Lookup(filename)
}

// hexOf formats a finished hash as a digest.
func hexOf(a Algo, h hash.Hash) Digest { return Digest{Algo: a, Hex: hex.EncodeToString(h.Sum(nil))} }
