package image

// Authenticated downloads. Where a distribution signs its checksum index
// (Ubuntu: detached SHA256SUMS.gpg; Fedora: a clearsigned CHECKSUM) or its
// images (Arch: a .sig per image), the signature is verified against that
// distribution's keys embedded here (keys/README.md says which and from where),
// whatever mirror serves the files. Where it signs nothing (Debian's and
// Alpine's cloud images), the checksum index is taken from the distribution's
// own https host (Trust.Index) even when a mirror serves the image.

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"

	"github.com/fvmhq/fvm/core/store"
)

// What a distribution signs (Trust.Signed).
const (
	SignedIndexDetached    = "index-detached"    // Sig is a detached signature of the checksum index
	SignedIndexClearsigned = "index-clearsigned" // the checksum index is clearsigned
	SignedImage            = "image"             // Sig is a detached signature of the image file
)

// Trust says how a distro's downloads are authenticated (catalog.yaml).
type Trust struct {
	Signed string `yaml:"signed,omitempty" json:"signed,omitempty" mapstructure:"signed"`
	// Sig is the signature file's name, a template beside the index or image:
	// {checksums} is the index's file name, {file} the image's.
	Sig string `yaml:"sig,omitempty" json:"sig,omitempty" mapstructure:"sig"`
	// Keys names the embedded keyring (keys/): ubuntu, fedora-44, archlinux.
	Keys string `yaml:"keys,omitempty" json:"keys,omitempty" mapstructure:"keys"`
	// Index, for a distro that signs nothing, is the distribution's own https
	// base URL (laid out like the mirror) the checksum index is read from.
	Index string `yaml:"index,omitempty" json:"index,omitempty" mapstructure:"index"`
}

// ErrBadSignature means a signature did not verify against the distro's keys.
var ErrBadSignature = errors.New("signature does not verify")

//go:embed keys/*.gpg keys/*.asc keys/*.gz keys/archlinux-revoked
var keyFiles embed.FS

// embeddedKeys maps keyring names to their files in keys/.
var embeddedKeys = map[string]string{
	"ubuntu":    "keys/ubuntu-cloudimage.gpg",
	"fedora-44": "keys/fedora-44.asc",
	"archlinux": "keys/archlinux.gpg.gz",
}

// KeyringNames lists the embedded keyrings.
func KeyringNames() []string {
	var out []string
	for n := range embeddedKeys {
		out = append(out, n)
	}
	return out
}

var keyCache sync.Map // name → openpgp.EntityList

// EmbeddedKeyring returns an embedded keyring by name (revoked keys left out).
func EmbeddedKeyring(name string) (openpgp.EntityList, error) {
	if el, ok := keyCache.Load(name); ok {
		return el.(openpgp.EntityList), nil
	}
	file, ok := embeddedKeys[name]
	if !ok {
		return nil, fmt.Errorf("no embedded keyring %q (have %s)", name, strings.Join(KeyringNames(), ", "))
	}
	b, err := keyFiles.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(file, ".gz") {
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if b, err = io.ReadAll(z); err != nil {
			return nil, err
		}
	}
	el, err := ReadKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("embedded keyring %s: %w", name, err)
	}
	if name == "archlinux" {
		el = withoutRevoked(el)
	}
	keyCache.Store(name, el)
	return el, nil
}

// ReadKeyring reads an armored or binary OpenPGP keyring.
func ReadKeyring(b []byte) (openpgp.EntityList, error) {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
		return openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	}
	return openpgp.ReadKeyRing(bytes.NewReader(b))
}

func withoutRevoked(el openpgp.EntityList) openpgp.EntityList {
	b, _ := keyFiles.ReadFile("keys/archlinux-revoked")
	revoked := map[string]bool{}
	for _, l := range strings.Fields(string(b)) {
		revoked[strings.ToUpper(l)] = true
	}
	var out openpgp.EntityList
	for _, e := range el {
		if !revoked[fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)] {
			out = append(out, e)
		}
	}
	return out
}

// KeySource finds a keyring by name (EmbeddedKeyring, or a test's keys).
type KeySource func(name string) (openpgp.EntityList, error)

// VerifyDetached checks a detached signature (armored or binary) of signed.
func VerifyDetached(keys openpgp.EntityList, signed io.Reader, sig []byte) error {
	var err error
	if bytes.HasPrefix(bytes.TrimSpace(sig), []byte("-----BEGIN")) {
		_, err = openpgp.CheckArmoredDetachedSignature(keys, signed, bytes.NewReader(sig), nil)
	} else {
		_, err = openpgp.CheckDetachedSignature(keys, signed, bytes.NewReader(sig), nil)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// VerifyClearsigned checks a clearsigned text and returns only what is signed:
// text outside the signed part is never used.
func VerifyClearsigned(keys openpgp.EntityList, data []byte) ([]byte, error) {
	block, _ := clearsign.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: the index is not clearsigned", ErrBadSignature)
	}
	if _, err := block.VerifySignature(keys, nil); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return block.Plaintext, nil
}

// verifyFile checks a detached signature of the file at path.
func verifyFile(keys openpgp.EntityList, path string, sig []byte) error {
	f, _, err := store.OpenRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return VerifyDetached(keys, f, sig)
}

// TrustText says, for people, what verifies a distro's downloads.
func (t *Trust) TrustText(mirror string) string {
	if t == nil {
		t = &Trust{}
	}
	fp := func() string {
		el, err := EmbeddedKeyring(t.Keys)
		if err != nil || len(el) == 0 {
			return t.Keys
		}
		if len(el) > 2 {
			return fmt.Sprintf("%s keyring, %d keys", t.Keys, len(el))
		}
		return fmt.Sprintf("key %X", el[0].PrimaryKey.Fingerprint)
	}
	switch t.Signed {
	case SignedIndexDetached, SignedIndexClearsigned:
		return "signed checksum index (OpenPGP, " + fp() + ")"
	case SignedImage:
		return "signed image (OpenPGP, " + fp() + ")"
	}
	if t.Index != "" {
		return "checksum index over " + t.Index + " (upstream signs nothing)"
	}
	return "checksum index from the mirror " + mirror + " (nothing authenticates it)"
}

// sameHostKey marks a request whose redirects must stay on its host: a
// checksum index that only its host vouches for.
type sameHostKey struct{}

func sameHostOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, sameHostKey{}, true)
}

// safeClient is c (or the default) with fvm's redirect rules: never from https
// to http, and never to another host where the request says so.
func safeClient(c *http.Client) *http.Client {
	if c == nil {
		c = DefaultHTTPClient()
	}
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		first := via[0]
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("refused redirect from %s to %s: it leaves https", via[len(via)-1].URL.Redacted(), req.URL.Redacted())
		}
		if first.Context().Value(sameHostKey{}) != nil && req.URL.Host != first.URL.Host {
			return fmt.Errorf("refused redirect from %s to %s: the checksum index must come from %s itself", first.URL.Redacted(), req.URL.Redacted(), first.URL.Host)
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &cc
}
