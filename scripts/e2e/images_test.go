//go:build e2e

package e2e

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// debianMirror serves one disk file on 127.0.0.1 laid out like
// cloud.debian.org/images/cloud: a bookworm/ listing with a dated build and
// latest/, each with a SHA512SUMS. With wrong set, the indexes lie.
type debianMirror struct {
	srv   *httptest.Server
	wrong atomic.Bool
}

const e2eBuild = "20250210-2019"

func newDebianMirror(t *testing.T, file string) *debianMirror {
	t.Helper()
	t0 := time.Now()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum := hex.EncodeToString(h.Sum(nil))
	t.Logf("mirror: sha512 of %s in %s", file, time.Since(t0))
	m := &debianMirror{}
	names := map[string]string{
		e2eBuild: "debian-12-genericcloud-amd64-" + e2eBuild + ".qcow2",
		"latest": "debian-12-genericcloud-amd64.qcow2",
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bookworm/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<html><body><a href=\"../\">../</a>\n<a href=\"%s/\">%s/</a>\n<a href=\"latest/\">latest/</a>\n</body></html>\n", e2eBuild, e2eBuild)
	})
	mux.HandleFunc("GET /bookworm/{dir}/{file}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := names[r.PathValue("dir")]
		switch {
		case !ok:
			http.NotFound(w, r)
		case r.PathValue("file") == "SHA512SUMS":
			s := sum
			if m.wrong.Load() {
				s = strings.Repeat("0", len(sum))
			}
			fmt.Fprintf(w, "%s  %s\n", s, name)
		case r.PathValue("file") == name:
			http.ServeFile(w, r, file) // Range requests work too
		default:
			http.NotFound(w, r)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	m.srv.Start()
	t.Cleanup(m.srv.Close)
	return m
}

func localImages(t *testing.T) []api.Image {
	t.Helper()
	var imgs []api.Image
	if err := json.Unmarshal([]byte(mustFVM(t, "images", "--format", "json")), &imgs); err != nil {
		t.Fatal(err)
	}
	return imgs
}

func dirEntries(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestPull serves the locally built Debian image from a loopback mirror in
// Debian's layout: a lying checksum index is refused and leaves nothing, then
// `fvm run --rm debian:12` pulls, verifies and boots it. It runs beside TestISO
// (each boot under TCG leaves CPU to spare), after the tests that kill the host.
func TestPull(t *testing.T) {
	t.Parallel()
	find := func() (base api.Image) {
		for _, img := range localImages(t) {
			if img.Name == "debian-local" {
				base = img
			}
		}
		return base
	}
	base := find()
	if base.Path == "" { // any debian-local will do: only its bytes are served
		ensureImage(t)
		base = find()
	}
	if base.Path == "" {
		t.Fatal("no debian-local image")
	}
	m := newDebianMirror(t, base.Path)
	// Set for the CLI; it sends its mirror settings with each pull, so a host
	// started earlier without this variable uses it too.
	// Debian signs nothing: its checksum index host (normally cloud.debian.org) moves too.
	env := []string{"FVM_IMAGES_DEBIAN_MIRROR=" + m.srv.URL, "FVM_IMAGES_DEBIAN_INDEX=" + m.srv.URL}
	fvm := func(t *testing.T, args ...string) result { t.Helper(); return fvmEnv(t, env, args...) }
	mustFVM := func(t *testing.T, args ...string) string { t.Helper(); return mustFVMEnv(t, env, args...) }
	fvm(t, "image", "rm", "debian:12") // from an earlier run; may fail
	mustFVM(t, "image", "prune")

	t.Run("wrong-checksum", func(t *testing.T) {
		m.wrong.Store(true)
		defer m.wrong.Store(false)
		basesBefore := dirEntries(layout.BasesDir()) // debian-local's own base may live here
		r := fvm(t, "pull", "debian:12")
		msg := strings.TrimSpace(r.stderr[strings.LastIndex(r.stderr, "fvm: "):])
		if r.code == 0 || !strings.Contains(msg, "checksum mismatch") || strings.Contains(msg, "\n") {
			t.Fatalf("pull with a wrong checksum: %d %q", r.code, msg)
		}
		if left := dirEntries(layout.DownloadsDir()); len(left) != 0 {
			t.Errorf("downloads left: %v", left)
		}
		if left := dirEntries(layout.BasesDir()); !slices.Equal(left, basesBefore) {
			t.Errorf("bases changed by a failed pull: %v, before %v", left, basesBefore)
		}
		for _, img := range localImages(t) {
			if img.Ref != "" {
				t.Errorf("image registered after a failed pull: %+v", img)
			}
		}
	})

	t.Run("pull-speed", func(t *testing.T) {
		t0 := time.Now()
		mustFVM(t, "pull", "debian:12")
		d := time.Since(t0)
		t.Logf("MEASURE pull of %d MiB over loopback (download + sha512 + sha256 verify + file into cache): %s, %.0f MiB/s",
			base.Size>>20, d.Round(10*time.Millisecond), float64(base.Size)/(1<<20)/d.Seconds())
		t0 = time.Now()
		mustFVM(t, "pull", "debian:12")
		t.Logf("MEASURE pull when up to date: %s", time.Since(t0).Round(time.Millisecond))
		mustFVM(t, "image", "rm", "debian:12")
	})

	t.Run("run", func(t *testing.T) {
		t0 := time.Now()
		r := fvm(t, "run", "--rm", "--memory", "1G", "debian:12", "--", "uname", "-a")
		if r.code != 0 {
			t.Fatalf("run debian:12 failed: %s", r.stderr)
		}
		t.Logf("MEASURE run --rm debian:12 (pull + boot + command): %s", time.Since(t0))
		if !strings.HasPrefix(r.stdout, "Linux ") {
			t.Errorf("uname -a printed %q", r.stdout)
		}
		for _, want := range []string{"Verified debian:12 (amd64)", "Created VM"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("run output lacks %q", want)
			}
		}
		var pulled *api.Image
		for _, img := range localImages(t) {
			if img.Ref == "debian:12" {
				pulled = &img
			}
		}
		if pulled == nil || pulled.Build != e2eBuild || pulled.Digest != base.Digest || !strings.HasPrefix(pulled.UpstreamDigest, "sha512:") {
			t.Fatalf("pulled image %+v", pulled)
		}
		out := mustFVM(t, "update")
		if !strings.Contains(out, "up to date") {
			t.Errorf("update: %s", out)
		}
	})
}
