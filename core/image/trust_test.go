package image

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/klauspost/compress/zstd"

	"github.com/fvmhq/fvm/core/vm"
)

// TestSignaturesRefused: an index or image whose signature is bad, or made
// by a key upstream never used, is refused for every signing distro.
func TestSignaturesRefused(t *testing.T) {
	for _, tc := range []struct{ ref, file string }{
		{"ubuntu:24.04", "releases/noble/release-20261104.1/SHA256SUMS.gpg"},
		{"fedora:44", "releases/44/Cloud/x86_64/images/Fedora-Cloud-44-1.10-x86_64-CHECKSUM"},
		{"arch", "images/v20261101.412345/Arch-Linux-x86_64-cloudimg-20261101.412345.qcow2.sig"},
	} {
		for _, how := range []string{"bad", "wrong-key"} {
			t.Run(tc.ref+"/"+how, func(t *testing.T) {
				u := newFakeUpstream(t)
				u.populate()
				p := filepath.Join(u.root, filepath.FromSlash(tc.file))
				b, _ := os.ReadFile(p)
				switch {
				case how == "wrong-key" && strings.HasSuffix(p, "CHECKSUM"):
					os.WriteFile(p, clearsigned(otherKey, stripArmour(b)), 0o644)
				case how == "wrong-key":
					signed, _ := os.ReadFile(strings.TrimSuffix(strings.TrimSuffix(p, ".gpg"), ".sig"))
					var sig bytes.Buffer
					openpgp.ArmoredDetachSign(&sig, otherKey, bytes.NewReader(signed), nil)
					os.WriteFile(p, sig.Bytes(), 0o644)
				case strings.HasSuffix(p, "CHECKSUM"): // the signed text altered after signing
					os.WriteFile(p, bytes.Replace(b, []byte("SHA256 (Fedora-Cloud-Base-Generic"), []byte("SHA256 (Fedora-Cloud-Base-Evil"), 1), 0o644)
				default: // the signed file altered after signing
					signed := strings.TrimSuffix(strings.TrimSuffix(p, ".gpg"), ".sig")
					data, _ := os.ReadFile(signed)
					os.WriteFile(signed, append(data, '\n'), 0o644)
				}
				cat := u.catalog(t)
				e, err := cat.Resolve(tc.ref, vm.AMD64)
				if err != nil {
					t.Fatal(err)
				}
				err = pullOne(t, e)
				if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrNotListed) && !errors.Is(err, ErrChecksumMismatch) {
					t.Fatalf("pull with a %s signature: %v, want a refusal", how, err)
				}
				if how == "wrong-key" && !errors.Is(err, ErrBadSignature) {
					t.Fatalf("wrong key: %v, want ErrBadSignature", err)
				}
			})
		}
	}
}

// pullOne locates and fetches e as a pull does.
func pullOne(t *testing.T, e Entry) error {
	src, err := LocateWith(context.Background(), nil, e, testKeys)
	if err != nil {
		return err
	}
	_, err = Fetch(context.Background(), FetchRequest{URL: src.URL, Dest: filepath.Join(t.TempDir(), "img"), Digest: src.Digest, Check: src.ImageSig})
	return err
}

// TestEmbeddedKeys: the embedded keyrings load and hold the documented keys.
func TestEmbeddedKeys(t *testing.T) {
	for name, fp := range map[string]string{
		"ubuntu":    "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81",
		"fedora-44": "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6",
	} {
		el, err := EmbeddedKeyring(name)
		if err != nil || len(el) == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		found := false
		for _, e := range el {
			found = found || strings.EqualFold(strings.ToUpper(hexFP(e)), fp)
		}
		if !found {
			t.Errorf("%s lacks %s", name, fp)
		}
	}
	if el, err := EmbeddedKeyring("archlinux"); err != nil || len(el) < 100 {
		t.Fatalf("archlinux keyring: %d keys, %v", len(el), err)
	}
	for _, it := range Builtin().List() {
		if it.Trust == "" || strings.Contains(it.Trust, "nothing authenticates") {
			t.Errorf("%s: trust %q", it.Ref, it.Trust)
		}
	}
}

func hexFP(e *openpgp.Entity) string { return strings.ToUpper(bytesHex(e.PrimaryKey.Fingerprint)) }

func bytesHex(b []byte) string {
	const d = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, d[c>>4], d[c&15])
	}
	return string(out)
}

// TestRedirectRules: https never redirects to http; an unsigned index never
// redirects to another host (the image may: mirrors redirect).
func TestRedirectRules(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("index")) }))
	defer plain.Close()
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
	}))
	defer tls.Close()
	ctx := context.Background()
	if _, err := getSmall(ctx, tls.Client(), tls.URL+"/SHA512SUMS"); err == nil || !strings.Contains(err.Error(), "leaves https") {
		t.Fatalf("https → http: %v", err)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("forged index")) }))
	defer other.Close()
	hop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	defer hop.Close()
	if _, err := getSmall(sameHostOnly(ctx), nil, hop.URL+"/SHA512SUMS"); err == nil || !strings.Contains(err.Error(), "must come from") {
		t.Fatalf("cross-host redirect of an unsigned index: %v", err)
	}
	if b, err := getSmall(ctx, nil, hop.URL+"/image"); err != nil || string(b) != "forged index" {
		t.Fatalf("cross-host redirect of an image: %q %v (mirrors redirect: allowed)", b, err)
	}
}

// TestDecompressionBomb: a small zstd stream of zeros stops at the cap with a
// clear error, leaves no unpacked file, and keeps the verified download so a
// retry (with a larger cap) does not download again.
func TestDecompressionBomb(t *testing.T) {
	var z bytes.Buffer
	w, _ := zstd.NewWriter(&z)
	disk := make([]byte, 64<<20) // a partition table, then zeros
	disk[510], disk[511] = 0x55, 0xAA
	w.Write(disk)
	w.Close()
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { gets++; rw.Write(z.Bytes()) }))
	defer srv.Close()
	h := SHA256.NewHash()
	h.Write(z.Bytes())
	dest := filepath.Join(t.TempDir(), "bomb")
	req := FetchRequest{URL: srv.URL + "/x.zst", Dest: dest, Digest: hexOf(SHA256, h), MaxUnpacked: 8 << 20}
	_, err := Fetch(context.Background(), req)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "verified download is kept") {
		t.Fatalf("bomb: %v", err)
	}
	if _, err := os.Stat(dest + ".unpack" + PartSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Error("the unpacked part was left")
	}
	if _, err := os.Stat(dest + VerifiedSuffix); err != nil {
		t.Fatalf("the verified download was not kept: %v", err)
	}
	req.MaxUnpacked = 128 << 20
	res, err := Fetch(context.Background(), req)
	if err != nil || gets != 1 {
		t.Fatalf("retry: %v after %d downloads, want 1", err, gets)
	}
	if st, _ := os.Stat(dest); st.Size() != 64<<20 || res.Decompressed != FormatZstd {
		t.Errorf("unpacked %d bytes", st.Size())
	}
	// Cancellation stops a long decompression.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := decompress(ctx, dest+"x", dest+"y", FormatZstd, 1<<30, "x"); err == nil {
		t.Error("decompress of a missing file succeeded")
	}
}
