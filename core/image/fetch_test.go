package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// serveImage publishes one image with a GNU SHA256SUMS beside it.
func serveImage(t *testing.T, name string, img []byte) (*fakeUpstream, string, Digest) {
	u := newFakeUpstream(t)
	u.write("img/"+name, img)
	d := Digest{SHA256, sum256(img)}
	u.write("img/SHA256SUMS", []byte(d.Hex+"  "+name+"\n"))
	return u, u.srv.URL + "/img/" + name, d
}

// leftovers lists what a fetch left in dir, lock files aside (they must stay:
// removing a lock file races with a process about to take it).
func leftovers(t *testing.T, dir string) []string {
	var out []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestFetchVerifies(t *testing.T) {
	img := fakeImage("plain", 300<<10)
	_, url, d := serveImage(t, "disk.qcow2", img)
	dest := filepath.Join(t.TempDir(), "disk.qcow2")
	var last, total int64
	res, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d,
		Progress: func(done, tot int64) { last, total = done, tot }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Downloaded || res.FileDigest != d || res.Size != int64(len(img)) || last != total || total != int64(len(img)) {
		t.Fatalf("result %+v, progress %d/%d", res, last, total)
	}
	// A second fetch finds the file and does not download.
	res, err = Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d})
	if err != nil || res.Downloaded || res.FileDigest != d {
		t.Fatalf("cached: %+v %v", res, err)
	}
}

func TestFetchMismatchLeavesNothing(t *testing.T) {
	img := fakeImage("mismatch", 10<<10)
	_, url, _ := serveImage(t, "disk.qcow2", img)
	wrong := Digest{SHA256, strings.Repeat("0", 64)}
	dir := t.TempDir()
	_, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: filepath.Join(dir, "disk.qcow2"), Digest: wrong})
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("err = %v", err)
	}
	for _, s := range []string{url, wrong.String(), sum256(img)} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
}

func TestFetchResumesInterruptedTransfer(t *testing.T) {
	img := fakeImage("resume", 200<<10)
	u, url, d := serveImage(t, "disk.qcow2", img)
	u.cutAfter["/img/disk.qcow2"] = 70_000
	dest := filepath.Join(t.TempDir(), "disk.qcow2")
	res, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	n, ranges := u.gets("/img/disk.qcow2")
	if n != 2 || len(ranges) != 1 || ranges[0] != "bytes=70000-" || !res.Resumed {
		t.Fatalf("gets=%d ranges=%v resumed=%v", n, ranges, res.Resumed)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, img) {
		t.Fatal("content differs")
	}
}

func TestFetchStalledTransferResumes(t *testing.T) {
	img := fakeImage("stall", 100<<10)
	u, url, d := serveImage(t, "disk.qcow2", img)
	u.cutAfter["/img/disk.qcow2"] = 30_000
	u.stall = true
	dest := filepath.Join(t.TempDir(), "disk.qcow2")
	res, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d, StallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, ranges := u.gets("/img/disk.qcow2"); len(ranges) != 1 || ranges[0] != "bytes=30000-" || !res.Resumed {
		t.Fatalf("ranges=%v %+v", ranges, res)
	}
}

func TestFetchGivesUpWithoutProgress(t *testing.T) {
	defer func(b time.Duration) { retryBackoff = b }(retryBackoff)
	retryBackoff = time.Millisecond
	img := fakeImage("cut", 100<<10)
	u, url, d := serveImage(t, "disk.qcow2", img)
	u.cutAfter["/img/disk.qcow2"] = 10_000
	u.alwaysCut, u.noRange = true, true // a server that ignores Range and always cuts
	dest := filepath.Join(t.TempDir(), "disk.qcow2")
	_, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d})
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("err = %v", err)
	}
	if n, _ := u.gets("/img/disk.qcow2"); n != maxAttempts {
		t.Fatalf("%d attempts", n)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("unverified file under the final name")
	}
}

func TestFetchResumesLeftoverPart(t *testing.T) {
	img := fakeImage("leftover", 100<<10)
	u, url, d := serveImage(t, "disk.qcow2", img)
	dest := filepath.Join(t.TempDir(), "disk.qcow2")
	os.WriteFile(dest+PartSuffix, img[:40_000], 0o644)
	res, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	if _, ranges := u.gets("/img/disk.qcow2"); len(ranges) != 1 || ranges[0] != "bytes=40000-" || !res.Resumed {
		t.Fatalf("ranges=%v %+v", ranges, res)
	}
	// A complete part gets 416 from the server and is verified as it is.
	dest2 := filepath.Join(t.TempDir(), "disk.qcow2")
	os.WriteFile(dest2+PartSuffix, img, 0o644)
	if _, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest2, Digest: d}); err != nil {
		t.Fatal(err)
	}
}

func TestFetchRestartsWhenRangeIgnoredOrPartStale(t *testing.T) {
	img := fakeImage("norange", 50<<10)
	u, url, d := serveImage(t, "disk.qcow2", img)
	u.noRange = true
	dest := filepath.Join(t.TempDir(), "disk.qcow2")
	os.WriteFile(dest+PartSuffix, img[:20_000], 0o644)
	if _, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d}); err != nil {
		t.Fatal(err)
	}
	// A part from an older upstream build fails verification once, then restarts from zero.
	u.noRange = false
	dest = filepath.Join(t.TempDir(), "disk.qcow2")
	os.WriteFile(dest+PartSuffix, bytes.Repeat([]byte{7}, 20_000), 0o644)
	if _, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, img) {
		t.Fatal("content differs")
	}
}

func TestFetchConcurrentDownloadsOnce(t *testing.T) {
	img := fakeImage("concurrent", 512<<10)
	u, url, d := serveImage(t, "disk.qcow2", img)
	dest := filepath.Join(t.TempDir(), "disk.qcow2")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d})
			if err == nil && res.FileDigest != d {
				err = errors.New("wrong digest " + res.FileDigest.String())
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := u.gets("/img/disk.qcow2"); n != 1 {
		t.Fatalf("%d downloads, want 1", n)
	}
}

func TestFetchDecompresses(t *testing.T) {
	raw := fakeImage("compressed", 64<<10)
	var gz, xzb, zst bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(raw)
	gw.Close()
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(raw)
	xw.Close()
	zw, _ := zstd.NewWriter(&zst)
	zw.Write(raw)
	zw.Close()
	for _, c := range []struct {
		name string
		data []byte
		f    Format
	}{{"disk.qcow2.gz", gz.Bytes(), FormatGzip}, {"disk.qcow2.xz", xzb.Bytes(), FormatXZ}, {"disk.raw.zst", zst.Bytes(), FormatZstd}} {
		_, url, d := serveImage(t, c.name, c.data)
		dir := t.TempDir()
		dest := filepath.Join(dir, "disk")
		res, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: dest, Digest: d})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, _ := os.ReadFile(dest)
		if !bytes.Equal(got, raw) || res.Decompressed != c.f || res.Digest != d || res.FileDigest.Hex != sum256(raw) || res.Info.Format != FormatQCOW2 {
			t.Fatalf("%s: %+v", c.name, res)
		}
		if l := leftovers(t, dir); len(l) != 1 {
			t.Fatalf("%s: left %v", c.name, l)
		}
	}
}

func TestFetchRefusesBackingFile(t *testing.T) {
	img := qcow2Header(1<<30, "/etc/shadow", "")
	if qemuImg, err := exec.LookPath("qemu-img"); err == nil {
		dir := t.TempDir()
		base, overlay := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "overlay.qcow2")
		exec.Command(qemuImg, "create", "-q", "-f", "qcow2", base, "16M").Run()
		if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v %s", err, out)
		}
		img, _ = os.ReadFile(overlay)
	}
	_, url, d := serveImage(t, "evil.qcow2", img)
	dir := t.TempDir()
	_, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: filepath.Join(dir, "evil.qcow2"), Digest: d})
	if !errors.Is(err, ErrUnsafeImage) || !strings.Contains(err.Error(), "backing file") || !strings.Contains(err.Error(), url) {
		t.Fatalf("err = %v", err)
	}
	if l := leftovers(t, dir); len(l) != 0 {
		t.Fatalf("left behind: %v", l)
	}
}

func TestFetchErrors(t *testing.T) {
	_, url, d := serveImage(t, "disk.qcow2", fakeImage("x", 100))
	dir := t.TempDir()
	_, err := Fetch(context.Background(), FetchRequest{URL: url + ".missing", Dest: filepath.Join(dir, "d"), Digest: d})
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), ".missing") {
		t.Fatalf("404: %v", err)
	}
	if _, err := Fetch(context.Background(), FetchRequest{URL: url, Dest: filepath.Join(dir, "d")}); err == nil {
		t.Fatal("missing digest accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Fetch(ctx, FetchRequest{URL: url, Dest: filepath.Join(dir, "e"), Digest: d}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestCleanStaleParts(t *testing.T) {
	dir := t.TempDir()
	old, fresh, other := filepath.Join(dir, "a.part"), filepath.Join(dir, "b.part"), filepath.Join(dir, "c.qcow2")
	for _, p := range []string{old, fresh, other} {
		os.WriteFile(p, []byte("x"), 0o644)
	}
	past := time.Now().Add(-25 * time.Hour)
	os.Chtimes(old, past, past)
	os.Chtimes(other, past, past)
	CleanStaleParts(dir, StalePartAge)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("stale part kept")
	}
	for _, p := range []string{fresh, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed", p)
		}
	}
}
