package image

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// fakeUpstream serves a temp directory laid out like the distributions'
// download sites (http.FileServer gives directory listings and Range support)
// and records every request.
type fakeUpstream struct {
	t    *testing.T
	root string
	srv  *httptest.Server

	mu        sync.Mutex
	reqs      []recordedReq
	cutAfter  map[string]int64 // path -> abort the first full GET after N bytes
	stall     bool             // with cutAfter: hang instead of dropping the connection
	alwaysCut bool             // keep cutting every full GET, not just the first
	noListing bool             // answer 404 for directories (a mirror without autoindex)
	noRange   bool             // ignore Range headers (answer 200 with the whole file)
}

type recordedReq struct{ Method, Path, Range string }

func newFakeUpstream(t *testing.T) *fakeUpstream {
	u := &fakeUpstream{t: t, root: t.TempDir(), cutAfter: map[string]int64{}}
	fs := http.FileServer(http.Dir(u.root))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, recordedReq{r.Method, r.URL.Path, r.Header.Get("Range")})
		cut, cutOK := u.cutAfter[r.URL.Path]
		if cutOK && r.Header.Get("Range") == "" && !u.alwaysCut {
			delete(u.cutAfter, r.URL.Path)
		}
		noListing, noRange, stall := u.noListing, u.noRange, u.stall
		u.mu.Unlock()
		if noListing && strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		if noRange {
			r.Header.Del("Range")
		}
		if cutOK && r.Header.Get("Range") == "" {
			b, err := os.ReadFile(filepath.Join(u.root, filepath.FromSlash(r.URL.Path)))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.WriteHeader(http.StatusOK)
			w.Write(b[:cut])
			w.(http.Flusher).Flush()
			if stall {
				<-r.Context().Done() // send nothing more until the client gives up
			}
			panic(http.ErrAbortHandler) // drop the connection mid-body
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *fakeUpstream) write(rel string, b []byte) {
	u.t.Helper()
	p := filepath.Join(u.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		u.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		u.t.Fatal(err)
	}
}

func (u *fakeUpstream) gets(path string) (n int, ranges []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.reqs {
		if r.Method == http.MethodGet && r.Path == path {
			n++
			if r.Range != "" {
				ranges = append(ranges, r.Range)
			}
		}
	}
	return n, ranges
}

// fakeImage is a small qcow2-looking file, unique per seed.
func fakeImage(seed string, size int) []byte {
	b := qcow2Header(1<<30, "", "")
	r := rand.New(rand.NewPCG(uint64(len(seed)), uint64(strings.Count(seed, "")*7919)))
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	copy(body, seed)
	return append(b, body...)
}

func sum256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func sum512(b []byte) string { s := sha512.Sum512(b); return hex.EncodeToString(s[:]) }

// upstreamFile is what a layout published: its path and content.
type upstreamFile struct {
	Path  string
	Bytes []byte
}

// populate lays out every distribution of the built-in catalog the way its
// upstream does, with real checksum files. It returns, per "ref/arch", the file
// Locate should pick and its build id.
func (u *fakeUpstream) populate() map[string]struct {
	File  upstreamFile
	Build string
} {
	want := map[string]struct {
		File  upstreamFile
		Build string
	}{}
	add := func(key, build string, f upstreamFile) {
		want[key] = struct {
			File  upstreamFile
			Build string
		}{f, build}
	}

	// Debian: <codename>/<YYYYMMDD-NNNN>/debian-N-genericcloud-ARCH-BUILD.qcow2 + SHA512SUMS,
	// latest/ without the suffix, daily/ beside them.
	for _, rel := range []struct{ v, code string }{{"13", "trixie"}, {"12", "bookworm"}} {
		builds := []string{"20260901-2200", "20261101-2301", "20261015-2250"}
		newest := "20261101-2301"
		for _, b := range builds {
			var sums strings.Builder
			for _, arch := range []string{"amd64", "arm64"} {
				name := fmt.Sprintf("debian-%s-genericcloud-%s-%s.qcow2", rel.v, arch, b)
				img := fakeImage(name, 4096)
				u.write(rel.code+"/"+b+"/"+name, img)
				fmt.Fprintf(&sums, "%s  %s\n", sum512(img), name)
				fmt.Fprintf(&sums, "%s  %s\n", sum512([]byte(name+".json")), strings.TrimSuffix(name, ".qcow2")+".json")
				if b == newest {
					add("debian:"+rel.v+"/"+arch, b, upstreamFile{rel.code + "/" + b + "/" + name, img})
					latest := fmt.Sprintf("debian-%s-genericcloud-%s.qcow2", rel.v, arch)
					u.write(rel.code+"/latest/"+latest, img)
					u.appendFile(rel.code+"/latest/SHA512SUMS", fmt.Sprintf("%s  %s\n", sum512(img), latest))
				}
			}
			u.write(rel.code+"/"+b+"/SHA512SUMS", []byte(sums.String()))
		}
		u.write(rel.code+"/daily/README", []byte("dailies"))
	}

	// Ubuntu: releases/<codename>/release-YYYYMMDD[.N]/ubuntu-V-server-cloudimg-ARCH.img + SHA256SUMS ("hex *file").
	for _, rel := range []struct{ v, code string }{{"26.04", "resolute"}, {"24.04", "noble"}, {"22.04", "jammy"}} {
		for _, b := range []string{"20261010", "20261104", "20261104.1"} {
			var sums strings.Builder
			for _, arch := range []string{"amd64", "arm64"} {
				name := fmt.Sprintf("ubuntu-%s-server-cloudimg-%s.img", rel.v, arch)
				img := fakeImage(b+name, 3000)
				dir := "releases/" + rel.code + "/release-" + b + "/"
				u.write(dir+name, img)
				fmt.Fprintf(&sums, "%s *%s\n", sum256(img), name)
				if b == "20261104.1" {
					add("ubuntu:"+rel.v+"/"+arch, b, upstreamFile{dir + name, img})
					u.write("releases/"+rel.code+"/release/"+name, img)
					u.appendFile("releases/"+rel.code+"/release/SHA256SUMS", fmt.Sprintf("%s *%s\n", sum256(img), name))
				}
			}
			u.write("releases/"+rel.code+"/release-"+b+"/SHA256SUMS", []byte(sums.String()))
		}
	}

	// Fedora: releases/44/Cloud/ARCH/images/ with a clearsigned BSD CHECKSUM whose name carries the respin.
	for _, arch := range []struct{ vm, up string }{{"amd64", "x86_64"}, {"arm64", "aarch64"}} {
		dir := "releases/44/Cloud/" + arch.up + "/images/"
		var newest upstreamFile
		for _, respin := range []string{"1.6", "1.10"} { // 1.10 is newer: natural order
			name := fmt.Sprintf("Fedora-Cloud-Base-Generic-44-%s.%s.qcow2", respin, arch.up)
			img := fakeImage(name, 5000)
			u.write(dir+name, img)
			uki := fmt.Sprintf("Fedora-Cloud-Base-UEFI-UKI-44-%s.%s.qcow2", respin, arch.up)
			sums := fmt.Sprintf("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n# %s: %d bytes\nSHA256 (%s) = %s\n# %s: 1 bytes\nSHA256 (%s) = %s\n-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n",
				name, len(img), name, sum256(img), uki, uki, sum256([]byte(uki)))
			u.write(dir+fmt.Sprintf("Fedora-Cloud-44-%s-%s-CHECKSUM", respin, arch.up), []byte(sums))
			newest = upstreamFile{dir + name, img}
		}
		add("fedora:44/"+arch.vm, "1.10", newest)
	}

	// Arch: images/vYYYYMMDD.N/Arch-Linux-x86_64-cloudimg-YYYYMMDD.N.qcow2 + per-file .SHA256; latest/ too.
	for _, b := range []string{"20261015.401234", "20261101.412345"} {
		name := "Arch-Linux-x86_64-cloudimg-" + b + ".qcow2"
		img := fakeImage(name, 3500)
		u.write("images/v"+b+"/"+name, img)
		u.write("images/v"+b+"/"+name+".SHA256", []byte(sum256(img)+"  "+name+"\n"))
		add("arch:rolling/amd64", b, upstreamFile{"images/v" + b + "/" + name, img})
		u.write("images/latest/Arch-Linux-x86_64-cloudimg.qcow2", img)
		// The alias's checksum names the dated file, which Locate must accept.
		u.write("images/latest/Arch-Linux-x86_64-cloudimg.qcow2.SHA256", []byte(sum256(img)+"  "+name+"\n"))
	}

	// Alpine: vX.Y/releases/cloud/nocloud_alpine-X.Y.Z-ARCH-uefi-cloudinit-rN.qcow2 + bare .sha512.
	for _, dir := range []struct{ path, minor, key string }{
		{"latest-stable/releases/cloud/", "3.23", "alpine:latest-stable"},
		{"v3.23/releases/cloud/", "3.23", "alpine:3.23"},
		{"v3.22/releases/cloud/", "3.22", "alpine:3.22"},
	} {
		for _, arch := range []struct{ vm, up string }{{"amd64", "x86_64"}, {"arm64", "aarch64"}} {
			for _, patch := range []string{"9", "10"} {
				name := fmt.Sprintf("nocloud_alpine-%s.%s-%s-uefi-cloudinit-r0.qcow2", dir.minor, patch, arch.up)
				img := fakeImage(dir.path+name, 2500)
				u.write(dir.path+name, img)
				u.write(dir.path+name+".sha512", []byte(sum512(img)+"\n"))
				bios := strings.Replace(name, "uefi", "bios", 1)
				u.write(dir.path+bios, []byte("bios"))
				add(dir.key+"/"+arch.vm, dir.minor+"."+patch, upstreamFile{dir.path + name, img})
			}
		}
	}
	u.sign()
	return want
}

var (
	testKeyOnce sync.Once
	testKey     *openpgp.Entity
	otherKey    *openpgp.Entity // a key upstream never used
)

// testKeys stands in for every embedded keyring: the fake upstream signs with it.
func testKeys(string) (openpgp.EntityList, error) {
	testKeyOnce.Do(func() {
		cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}
		testKey, _ = openpgp.NewEntity("fake upstream", "", "signing@upstream.test", cfg)
		otherKey, _ = openpgp.NewEntity("someone else", "", "other@elsewhere.test", cfg)
	})
	return openpgp.EntityList{testKey}, nil
}

// sign signs what each distro signs: Ubuntu's SHA256SUMS (detached, armored
// .gpg), Fedora's CHECKSUM (clearsigned, in place), Arch's images (.sig).
func (u *fakeUpstream) sign() {
	testKeys("")
	filepath.Walk(u.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		switch {
		case strings.HasPrefix(filepath.Base(p), "SHA256SUMS") && !strings.HasSuffix(p, ".gpg"):
			var sig bytes.Buffer
			openpgp.ArmoredDetachSign(&sig, testKey, bytes.NewReader(b), nil)
			os.WriteFile(p+".gpg", sig.Bytes(), 0o644)
		case strings.HasSuffix(p, "-CHECKSUM"):
			os.WriteFile(p, clearsigned(testKey, stripArmour(b)), 0o644)
		case strings.Contains(p, "Arch-Linux") && strings.HasSuffix(p, ".qcow2"):
			var sig bytes.Buffer
			openpgp.DetachSign(&sig, testKey, bytes.NewReader(b), nil)
			os.WriteFile(p+".sig", sig.Bytes(), 0o644)
		}
		return nil
	})
}

func clearsigned(key *openpgp.Entity, text []byte) []byte {
	var out bytes.Buffer
	w, _ := clearsign.Encode(&out, key.PrivateKey, nil)
	w.Write(text)
	w.Close()
	return out.Bytes()
}

// stripArmour keeps the text of a (fake) clearsigned file.
func stripArmour(b []byte) []byte {
	s := string(b)
	if i := strings.Index(s, "\n\n"); strings.HasPrefix(s, "-----BEGIN PGP SIGNED") && i >= 0 {
		s = s[i+2:]
	}
	if i := strings.Index(s, "-----BEGIN PGP SIGNATURE"); i >= 0 {
		s = s[:i]
	}
	return []byte(s)
}

func (u *fakeUpstream) appendFile(rel string, s string) {
	p := filepath.Join(u.root, filepath.FromSlash(rel))
	old, _ := os.ReadFile(p)
	u.write(rel, append(old, s...))
}

// catalogFor returns the built-in catalog with every mirror pointed at u.
func (u *fakeUpstream) catalog(t *testing.T) *Catalog {
	c := Builtin()
	m := map[string]string{}
	for _, n := range c.Names() {
		m[n] = u.srv.URL + "/"
	}
	if err := c.SetMirrors(m); err != nil {
		t.Fatal(err)
	}
	// Debian and Alpine sign nothing: their index is read from "their own host".
	if err := c.SetIndexes(map[string]string{"debian": u.srv.URL + "/", "alpine": u.srv.URL + "/"}); err != nil {
		t.Fatal(err)
	}
	return c
}
