package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/vm"
)

func (h *host) images() image.Registry { return image.Registry{Layout: h.layout} }

// debMirror serves a loopback mirror laid out like cloud.debian.org/images/cloud:
// bookworm/YYYYMMDD-NNNN/debian-12-genericcloud-amd64-YYYYMMDD-NNNN.qcow2 and
// bookworm/latest/debian-12-genericcloud-amd64.qcow2, each dir with SHA512SUMS.
type debMirror struct {
	dir   string
	srv   *httptest.Server
	gets  atomic.Int32 // GETs of disk images
	delay time.Duration
}

func newDebMirror(t *testing.T) *debMirror {
	t.Helper()
	m := &debMirror{dir: t.TempDir()}
	fs := http.FileServer(http.Dir(m.dir))
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".qcow2") {
			m.gets.Add(1)
			time.Sleep(m.delay)
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// disk is a small raw disk whose content names the build, with an MBR boot
// signature so it passes as a partitioned disk.
func disk(build string) []byte {
	b := bytes.Repeat([]byte(fmt.Sprintf("fvm test disk %-20s", build)), (2<<20)/34)
	b[510], b[511] = 0x55, 0xAA
	return b
}

// addBuild publishes a dated build and points latest/ at it. sums overrides the
// SHA512SUMS body (for mismatch tests).
func (m *debMirror) addBuild(t *testing.T, build string, content []byte, sums string) {
	t.Helper()
	sum := sha512.Sum512(content)
	for _, d := range []struct{ dir, file string }{
		{"bookworm/" + build, "debian-12-genericcloud-amd64-" + build + ".qcow2"},
		{"bookworm/latest", "debian-12-genericcloud-amd64.qcow2"},
	} {
		dir := filepath.Join(m.dir, d.dir)
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, d.file), content, 0o644); err != nil {
			t.Fatal(err)
		}
		body := sums
		if body == "" {
			body = fmt.Sprintf("%x  %s\n%x  debian-12-genericcloud-arm64.qcow2\n", sum, d.file, sha512.Sum512([]byte("other")))
		}
		if err := os.WriteFile(filepath.Join(dir, "SHA512SUMS"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newImageHost(t *testing.T) (*host, *debMirror) {
	t.Helper()
	m := newDebMirror(t)
	t.Setenv("FVM_IMAGES_DEBIAN_MIRROR", m.srv.URL) // the host reads config + env itself
	t.Setenv("FVM_IMAGES_DEBIAN_INDEX", m.srv.URL)  // Debian signs nothing: its index host, moved too
	return startHost(t, &fakeDriver{running: map[string]*fakeMachine{}}), m
}

// progressLog collects a pull's progress events.
type progressLog struct {
	mu  sync.Mutex
	evs []api.Event
}

func (p *progressLog) add(ev api.Event) { p.mu.Lock(); p.evs = append(p.evs, ev); p.mu.Unlock() }
func (p *progressLog) phases() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, ev := range p.evs {
		if len(out) == 0 || out[len(out)-1] != ev.Phase {
			out = append(out, ev.Phase)
		}
	}
	return out
}

func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestPullOverSocket(t *testing.T) {
	h, m := newImageHost(t)
	ctx := context.Background()
	m.addBuild(t, "20250101-1000", disk("old"), "")
	content := disk("new")
	m.addBuild(t, "20250210-2019", content, "")

	events := make(chan api.Event, 1000)
	ectx, ecancel := context.WithCancel(ctx)
	defer ecancel()
	go h.c.Events(ectx, func(ev api.Event) { events <- ev })
	time.Sleep(50 * time.Millisecond)

	var prog progressLog
	img, err := h.c.PullImage(ctx, api.PullRequest{Ref: "debian:bookworm", Arch: vm.AMD64}, prog.add)
	if err != nil {
		t.Fatal(err)
	}
	want256 := fmt.Sprintf("sha256:%x", sha256.Sum256(content))
	want512 := fmt.Sprintf("sha512:%x", sha512.Sum512(content))
	if img.Name != "debian-12-amd64" || img.Ref != "debian:12" || img.Build != "20250210-2019" || img.Digest != want256 ||
		img.UpstreamDigest != want512 || img.Format != "raw" || img.Size != int64(len(content)) || img.Distro != "debian" {
		t.Fatalf("pulled %+v", img)
	}
	if got, err := os.ReadFile(img.Path); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("base %s: %v", img.Path, err)
	}
	if got := strings.Join(prog.phases(), ","); got != "resolving,downloading,verified" {
		t.Errorf("progress phases %s", got)
	}
	last := prog.evs[len(prog.evs)-2]
	if last.Done != int64(len(content)) || last.Total != int64(len(content)) || last.Image != "debian:12" {
		t.Errorf("last download event %+v", last)
	}
	if left := dirFiles(t, h.layout.DownloadsDir()); len(left) != 0 {
		t.Errorf("downloads left %v", left)
	}
	seen := map[string]bool{}
	for timeout := time.After(2 * time.Second); !seen[api.EventImagePulled]; {
		select {
		case ev := <-events:
			seen[ev.Type+"/"+ev.Phase] = true
			seen[ev.Type] = true
		case <-timeout:
			t.Fatalf("events seen %v", seen)
		}
	}
	if !seen[api.EventProgress+"/"+api.PhaseDownloading] {
		t.Errorf("no download progress on the event stream: %v", seen)
	}

	// Pulling again asks upstream but downloads nothing.
	prog = progressLog{}
	if _, err := h.c.PullImage(ctx, api.PullRequest{Ref: "debian:12"}, prog.add); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(prog.phases(), ","); got != "resolving,up-to-date" || m.gets.Load() != 1 {
		t.Errorf("second pull: phases %s, %d image GETs", got, m.gets.Load())
	}

	list, _ := h.c.Images(ctx)
	if len(list) != 1 || list[0].Ref != "debian:12" {
		t.Fatalf("images %+v", list)
	}
	cat, err := h.c.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range cat {
		if it.Ref == "debian:12" && (len(it.Cached) != 1 || it.Mirror != m.srv.URL) {
			t.Errorf("catalog item %+v", it)
		}
	}
	// A VM made from the reference uses the cached base: no download.
	v, err := h.c.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "web", Image: "debian:12"}})
	if err != nil || v.Spec.BaseImage != img.Path || v.Spec.Arch != vm.AMD64 {
		t.Fatalf("create: %+v %v", v.Spec, err)
	}
	if m.gets.Load() != 1 {
		t.Errorf("create downloaded again")
	}
}

func TestPullMismatchLeavesNothing(t *testing.T) {
	h, m := newImageHost(t)
	content := disk("x")
	bad := fmt.Sprintf("%x  debian-12-genericcloud-amd64.qcow2\n", sha512.Sum512([]byte("not it")))
	m.addBuild(t, "20250210-2019", content, strings.ReplaceAll(bad, "amd64.qcow2", "amd64-20250210-2019.qcow2"))
	_, err := h.c.PullImage(context.Background(), api.PullRequest{Ref: "debian:12"}, nil)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("pull: %v", err)
	}
	// Not listed at all is refused too.
	m.addBuild(t, "20250301-0000", content, "0000  something-else.qcow2\n")
	if _, err := h.c.PullImage(context.Background(), api.PullRequest{Ref: "debian:12"}, nil); err == nil || !strings.Contains(err.Error(), "not listed") {
		t.Fatalf("pull of unlisted file: %v", err)
	}
	for _, dir := range []string{h.layout.DownloadsDir(), h.layout.BasesDir(), h.layout.ImagesDir()} {
		if left := dirFiles(t, dir); len(left) != 0 {
			t.Errorf("%s holds %v after failed pulls", dir, left)
		}
	}
}

func TestConcurrentPullsDownloadOnce(t *testing.T) {
	h, m := newImageHost(t)
	m.delay = 300 * time.Millisecond
	m.addBuild(t, "20250210-2019", disk("c"), "")
	var wg sync.WaitGroup
	errs := make([]error, 20)
	imgs := make([]api.Image, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			imgs[i], errs[i] = h.c.PullImage(context.Background(), api.PullRequest{Ref: "debian:12"}, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || imgs[i].Path != imgs[0].Path {
			t.Fatalf("pull %d: %v %s", i, err, imgs[i].Path)
		}
	}
	if n := m.gets.Load(); n != 1 {
		t.Errorf("%d downloads for 20 concurrent pulls, want 1", n)
	}
}

func TestLocalNameWinsAndImplicitPull(t *testing.T) {
	h, m := newImageHost(t)
	ctx := context.Background()
	m.addBuild(t, "20250210-2019", disk("i"), "")
	h.addImage(t) // local "tiny"
	// A catalog reference that is not cached is pulled by Create itself.
	v, err := h.c.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "a", Image: "debian:12"}})
	if err != nil || m.gets.Load() != 1 || !strings.Contains(v.Spec.BaseImage, "bases") {
		t.Fatalf("implicit pull: %+v %v (%d GETs)", v.Spec, err, m.gets.Load())
	}
	// IfMissing returns local images without asking anyone.
	img, err := h.c.PullImage(ctx, api.PullRequest{Ref: "tiny", IfMissing: true}, nil)
	if err != nil || img.Name != "tiny" {
		t.Fatalf("if-missing local: %+v %v", img, err)
	}
	if _, err := h.c.PullImage(ctx, api.PullRequest{Ref: "tiny"}, nil); api.CodeOf(err) != api.CodeInvalid || !strings.Contains(err.Error(), "local image") {
		t.Fatalf("pull of a local name: %v", err)
	}
	// A local image named like a distro wins over the catalog.
	tiny, _ := h.c.Images(ctx)
	for _, im := range tiny {
		if im.Name == "tiny" {
			im.Name = "debian"
			if err := h.images().Add(im); err != nil {
				t.Fatal(err)
			}
		}
	}
	v, err = h.c.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "b", Image: "debian"}})
	if err != nil || m.gets.Load() != 1 {
		t.Fatalf("local debian: %+v %v", v.Spec, err)
	}
	for _, bad := range []struct{ ref, want string }{
		{"nosuch", "no local image"},
		{"debian:11", "12 (bookworm)"},
	} {
		_, err := h.c.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "c", Image: bad.ref}})
		if !api.IsNotFound(err) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("create from %s: %v", bad.ref, err)
		}
	}
}

func TestUpdateRemoveAndPrune(t *testing.T) {
	h, m := newImageHost(t)
	ctx := context.Background()
	m.addBuild(t, "20250101-1000", disk("old"), "")
	old, err := h.c.PullImage(ctx, api.PullRequest{Ref: "debian:12"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "keep", Image: "debian:12"}}); err != nil {
		t.Fatal(err)
	}
	rows, err := h.c.CheckUpdates(ctx, api.UpdatesRequest{})
	if err != nil || len(rows) != 1 || rows[0].Newer || rows[0].CachedBuild != "20250101-1000" {
		t.Fatalf("updates before a new build: %+v %v", rows, err)
	}
	m.addBuild(t, "20250210-2019", disk("new"), "")
	rows, err = h.c.CheckUpdates(ctx, api.UpdatesRequest{})
	if err != nil || len(rows) != 1 || !rows[0].Newer || rows[0].AvailableBuild != "20250210-2019" || rows[0].Ref != "debian:12" {
		t.Fatalf("updates: %+v %v", rows, err)
	}
	cur, err := h.c.PullImage(ctx, api.PullRequest{Ref: "debian:12"}, nil)
	if err != nil || cur.Build != "20250210-2019" || cur.Path == old.Path {
		t.Fatalf("pull of the newer build: %+v %v", cur, err)
	}
	// Leftovers of an abandoned download go with prune.
	stale := filepath.Join(h.layout.DownloadsDir(), "sha512-abc-x.qcow2.part")
	os.WriteFile(stale, []byte("partial"), 0o644)

	res, err := h.c.PruneImages(ctx)
	if err != nil || len(res.Removed) != 1 || res.Removed[0] != stale {
		t.Fatalf("prune with the old base in use by a VM: %+v %v", res, err)
	}
	for _, p := range []string{old.Path, cur.Path} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("prune removed a base in use: %v", err)
		}
	}
	// rm of the reference removes the name; the base stays until prune.
	removed, err := h.c.RemoveImage(ctx, "debian:bookworm", "")
	if err != nil || len(removed) != 1 || removed[0].Name != "debian-12-amd64" {
		t.Fatalf("rm: %+v %v", removed, err)
	}
	if _, err := h.c.RemoveImage(ctx, "debian:12", ""); !api.IsNotFound(err) {
		t.Fatalf("second rm: %v", err)
	}
	if err := h.c.Remove(ctx, "keep", true); err != nil {
		t.Fatal(err)
	}
	res, err = h.c.PruneImages(ctx)
	if err != nil || res.Freed != old.Size+cur.Size || len(dirFiles(t, h.layout.BasesDir())) != 0 {
		t.Fatalf("prune after rm: %+v %v, bases left %v", res, err, dirFiles(t, h.layout.BasesDir()))
	}
}

func TestMirrorFromRequest(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	m := newDebMirror(t)
	m.addBuild(t, "20250210-2019", disk("r"), "")
	// No env in the host: the client's setting travels with the request.
	img, err := h.c.PullImage(context.Background(), api.PullRequest{Ref: "debian:12", Mirrors: map[string]string{"debian": m.srv.URL}, Indexes: map[string]string{"debian": m.srv.URL}}, nil)
	if err != nil || img.Source != m.srv.URL+"/bookworm/20250210-2019/debian-12-genericcloud-amd64-20250210-2019.qcow2" {
		t.Fatalf("pull: %+v %v", img, err)
	}
	if _, err := h.c.PullImage(context.Background(), api.PullRequest{Ref: "debian:12", Mirrors: map[string]string{"debian": "ftp://x"}}, nil); api.CodeOf(err) != api.CodeInvalid {
		t.Fatalf("bad mirror: %v", err)
	}
}

func TestImport(t *testing.T) {
	h, m := newImageHost(t)
	ctx := context.Background()
	content := disk("imp")
	m.addBuild(t, "20250210-2019", content, "")
	url := m.srv.URL + "/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256(content))

	if _, err := h.c.ImportImage(ctx, api.ImportRequest{Source: url, Name: "x"}, nil); api.CodeOf(err) != api.CodeInvalid || !strings.Contains(err.Error(), "--insecure-skip-verify") {
		t.Fatalf("URL without checksum: %v", err)
	}
	wrong := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("no")))
	if _, err := h.c.ImportImage(ctx, api.ImportRequest{Source: url, Name: "x", Checksum: wrong}, nil); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("wrong checksum: %v", err)
	}
	for _, dir := range []string{h.layout.DownloadsDir(), h.layout.BasesDir(), h.layout.ImagesDir()} {
		if left := dirFiles(t, dir); len(left) != 0 {
			t.Errorf("%s holds %v after a refused import", dir, left)
		}
	}
	var prog progressLog
	img, err := h.c.ImportImage(ctx, api.ImportRequest{Source: url, Checksum: sum}, prog.add)
	if err != nil || img.Name != "debian-12-genericcloud-amd64" || img.Digest != sum || img.Source != url {
		t.Fatalf("import: %+v %v", img, err)
	}
	if got := strings.Join(prog.phases(), ","); got != "downloading,verified" {
		t.Errorf("import phases %s", got)
	}
	// The same URL and checksum again is a cache hit.
	if _, err := h.c.ImportImage(ctx, api.ImportRequest{Source: url, Checksum: sum}, nil); err != nil || m.gets.Load() != 2 {
		t.Fatalf("re-import: %v, %d GETs", err, m.gets.Load())
	}
	img, err = h.c.ImportImage(ctx, api.ImportRequest{Source: url, Name: "unverified", InsecureSkipVerify: true}, nil)
	if err != nil || img.Digest != sum || img.UpstreamDigest != "" {
		t.Fatalf("insecure import: %+v %v", img, err)
	}
	if left := dirFiles(t, h.layout.DownloadsDir()); len(left) != 0 {
		t.Errorf("downloads left %v", left)
	}

	// Local files: checksum checked before anything is copied; backing files refused.
	f := filepath.Join(t.TempDir(), "d.raw")
	os.WriteFile(f, content, 0o644)
	if _, err := h.c.ImportImage(ctx, api.ImportRequest{Source: f, Name: "f", Checksum: wrong}, nil); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("file with wrong checksum: %v", err)
	}
	if img, err := h.c.ImportImage(ctx, api.ImportRequest{Source: f, Name: "f", Checksum: sum}, nil); err != nil || img.Name != "f" {
		t.Fatalf("file import: %+v %v", img, err)
	}
	bk := filepath.Join(t.TempDir(), "evil.qcow2")
	os.WriteFile(bk, qcow2WithBacking("/etc/shadow"), 0o644)
	if _, err := h.c.ImportImage(ctx, api.ImportRequest{Source: bk, Name: "evil"}, nil); err == nil || !strings.Contains(err.Error(), "backing file") {
		t.Fatalf("qcow2 with backing file: %v", err)
	}
	if _, err := h.c.ImportImage(ctx, api.ImportRequest{Source: "rel/path.qcow2", Name: "r"}, nil); api.CodeOf(err) != api.CodeInvalid {
		t.Fatalf("relative path: %v", err)
	}
}

// qcow2WithBacking is a minimal qcow2 v2 header that names a backing file.
func qcow2WithBacking(name string) []byte {
	b := make([]byte, 512)
	copy(b, "QFI\xfb")
	be := binary.BigEndian
	be.PutUint32(b[4:], 2)
	be.PutUint64(b[8:], 72)
	be.PutUint32(b[16:], uint32(len(name)))
	be.PutUint32(b[20:], 16)
	be.PutUint64(b[24:], 1<<20)
	copy(b[72:], name)
	return b
}

func TestPullResumesInterruptedTransfer(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	m := newDebMirror(t)
	content := disk("resume")
	m.addBuild(t, "20250210-2019", content, "")
	var ranges atomic.Int32
	var cut atomic.Bool
	fs := http.FileServer(http.Dir(m.dir))
	m.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".qcow2") {
			fs.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Range") != "" {
			ranges.Add(1)
		}
		if cut.CompareAndSwap(false, true) { // the first transfer breaks half way
			w.Header().Set("Content-Length", fmt.Sprint(len(content)))
			w.Write(content[:len(content)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		fs.ServeHTTP(w, r)
	})
	img, err := h.c.PullImage(context.Background(), api.PullRequest{Ref: "debian:12", Mirrors: map[string]string{"debian": m.srv.URL}, Indexes: map[string]string{"debian": m.srv.URL}}, nil)
	if err != nil || ranges.Load() != 1 || img.Digest != fmt.Sprintf("sha256:%x", sha256.Sum256(content)) {
		t.Fatalf("pull: %+v %v (%d range requests)", img, err, ranges.Load())
	}
}
