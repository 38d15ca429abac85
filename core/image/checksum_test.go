package image

import (
	"errors"
	"strings"
	"testing"
)

var (
	h64  = strings.Repeat("ab", 32)
	h128 = strings.Repeat("cd", 64)
)

func TestParseGNU(t *testing.T) {
	data := h128 + "  debian-12-genericcloud-amd64.qcow2\n" +
		strings.ToUpper(h64) + " *ubuntu-24.04-server-cloudimg-amd64.img\r\n" +
		"deadbeef  md5-is-refused.img\n" +
		strings.Repeat("0", 40) + "  sha1-is-refused.img\n" +
		`\` + h64 + `  back\\slash.img` + "\n"
	got := ParseGNU([]byte(data))
	want := []IndexEntry{
		{"debian-12-genericcloud-amd64.qcow2", Digest{SHA512, h128}},
		{"ubuntu-24.04-server-cloudimg-amd64.img", Digest{SHA256, h64}},
		{`back\slash.img`, Digest{SHA256, h64}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v want %+v", i, got[i], want[i])
		}
	}
}

const fedoraChecksum = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

# Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2: 583729152 bytes
SHA256 (Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2) = %s
# Fedora-Cloud-Base-UEFI-UKI-44-1.7.x86_64.qcow2: 1 bytes
- SHA256 (Fedora-Cloud-Base-UEFI-UKI-44-1.7.x86_64.qcow2) = %s
SHA512 (mislabelled.qcow2) = %s
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEE
%s
-----END PGP SIGNATURE-----
`

func TestParseBSDFedora(t *testing.T) {
	other := strings.Repeat("12", 32)
	body := []byte(sprintf4(fedoraChecksum, h64, other, h64, h64))
	got := ParseBSD(body)
	if len(got) != 2 || got[0].Name != "Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2" || got[0].Digest != (Digest{SHA256, h64}) ||
		got[1].Digest.Hex != other {
		t.Fatalf("got %+v", got)
	}
	d, err := Lookup(body, "Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2")
	if err != nil || d.Hex != h64 {
		t.Fatalf("Lookup = %v, %v", d, err)
	}
	if _, err := Lookup(body, "mislabelled.qcow2"); !errors.Is(err, ErrNotListed) {
		t.Fatalf("label/length mismatch accepted: %v", err)
	}
}

func sprintf4(f string, a ...string) string {
	for _, s := range a {
		f = strings.Replace(f, "%s", s, 1)
	}
	return f
}

func TestParseSingle(t *testing.T) {
	for _, in := range []string{
		h128 + "\n",
		h128 + "  nocloud_alpine-3.22.2-x86_64-uefi-cloudinit-r0.qcow2\n",
		"SHA512 (x.qcow2) = " + h128,
	} {
		d, err := ParseSingle([]byte(in))
		if err != nil || d != (Digest{SHA512, h128}) {
			t.Errorf("%q: %v %v", in, d, err)
		}
	}
	for _, in := range []string{"", "nothex\n", h64 + "\n" + h64 + "\n"} {
		if _, err := ParseSingle([]byte(in)); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}

func TestLookup(t *testing.T) {
	idx := []byte(h64 + "  ./images/a.img\n" + strings.Repeat("ef", 32) + "  b.img\n")
	if d, err := Lookup(idx, "a.img"); err != nil || d.Hex != h64 {
		t.Fatalf("basename match: %v %v", d, err)
	}
	if _, err := Lookup(idx, "c.img"); !errors.Is(err, ErrNotListed) || !strings.Contains(err.Error(), "c.img") {
		t.Fatalf("missing: %v", err)
	}
	if d, err := Lookup([]byte(h64+"\n"), "anything"); err != nil || d.Hex != h64 {
		t.Fatalf("bare: %v %v", d, err)
	}
}

func TestParseDigest(t *testing.T) {
	if d, err := ParseDigest("SHA256:" + strings.ToUpper(h64)); err != nil || d != (Digest{SHA256, h64}) {
		t.Fatalf("%v %v", d, err)
	}
	if d, err := ParseDigest(h128); err != nil || d.Algo != SHA512 {
		t.Fatalf("%v %v", d, err)
	}
	for _, bad := range []string{"md5:abc", "sha256:" + h128, "sha512:zz", "xyz"} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func checksumSeeds(f *testing.F) {
	f.Add([]byte(h128 + "  debian-12-genericcloud-amd64.qcow2\n"))
	f.Add([]byte(h64 + " *ubuntu-24.04-server-cloudimg-amd64.img\n"))
	f.Add([]byte(sprintf4(fedoraChecksum, h64, h64, h128, h64)))
	f.Add([]byte(h128 + "\n"))
	f.Add([]byte(`\` + h64 + `  a\\b\nc` + "\n"))
	f.Add([]byte("SHA256 () = \n- \n----- (x) = "))
}

func FuzzParseGNU(f *testing.F) {
	checksumSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range ParseGNU(b) {
			if e.Name == "" || e.Digest.Validate() != nil {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

func FuzzParseBSD(f *testing.F) {
	checksumSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range ParseBSD(b) {
			if e.Name == "" || e.Digest.Validate() != nil {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

func FuzzParseSingle(f *testing.F) {
	checksumSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseSingle(b); err == nil && d.Validate() != nil {
			t.Fatalf("bad digest %+v", d)
		}
	})
}

func FuzzLookup(f *testing.F) {
	checksumSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ix := ParseIndex(b)
		for _, n := range ix.Names() {
			if _, err := ix.Lookup(n); err != nil {
				t.Fatalf("listed name %q not found: %v", n, err)
			}
		}
		_, _ = ix.Lookup("x.qcow2")
	})
}

func FuzzParseDigest(f *testing.F) {
	f.Add("sha256:" + h64)
	f.Add(h128)
	f.Add("md5:")
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseDigest(s); err == nil {
			if d2, err := ParseDigest(d.String()); err != nil || d2 != d {
				t.Fatalf("round trip %q -> %v -> %v %v", s, d, d2, err)
			}
		}
	})
}
