package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
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

	"github.com/klauspost/compress/zstd"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// TestImportRewrittenInPlace: a source rewritten in place while it is
// imported (same inode, its first sector flipping between a safe qcow2 and
// qcow2s naming a host file as backing or data file, then between a raw disk
// and a qcow2) never puts a base with a backing or data file in the cache, and
// every image registered has the format its kept bytes have. A bounded loop:
// 100 + 40 imports.
func TestImportRewrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	src, _ := rawDisk(t, dir)
	good, _ := os.ReadFile(src)
	safe := qcow2Header(1<<20, "", "")
	for _, c := range []struct {
		heads [][]byte
		n     int
	}{
		{[][]byte{safe, qcow2Header(1<<20, "/etc/shadow", ""), safe, qcow2Header(1<<20, "", "/etc/shadow")}, 100},
		{[][]byte{good[:512], safe}, 40},
	} {
		r := testRegistry(t)
		imported, refused, flips := importWhileRewriting(t, r, src, c.heads, c.n)
		t.Logf("%d imports during %d in-place rewrites: %d registered, %d refused", c.n, flips, imported, refused)
		checkBases(t, r)
	}
}

// TestImportRewrittenBetweenCheckAndCopy is the race above made certain: the
// source passes its check, then its first sector becomes a qcow2 naming a
// host file (or a raw disk becomes a qcow2) before the copy: refused, nothing kept.
func TestImportRewrittenBetweenCheckAndCopy(t *testing.T) {
	src, _ := rawDisk(t, t.TempDir())
	good, _ := os.ReadFile(src)
	for _, c := range []struct{ before, after []byte }{
		{qcow2Header(1<<20, "", ""), qcow2Header(1<<20, "/etc/shadow", "")},
		{qcow2Header(1<<20, "", ""), qcow2Header(1<<20, "", "/etc/shadow")},
		{good[:512], qcow2Header(1<<20, "", "")},
	} {
		w, _ := os.OpenFile(src, os.O_WRONLY, 0)
		w.WriteAt(c.before, 0)
		testHookBeforeCopy = func(string) { w.WriteAt(c.after, 0) }
		r := testRegistry(t)
		_, err := r.ImportFile(context.Background(), src, "x", ImportOptions{})
		testHookBeforeCopy = func(string) {}
		w.Close()
		if !errors.Is(err, ErrNotDisk) && !errors.Is(err, ErrUnsafeImage) || !strings.Contains(err.Error(), "nothing was kept") {
			t.Errorf("import of a source rewritten before its copy: %v", err)
		}
		if ents, _ := os.ReadDir(r.Layout.BasesDir()); len(ents) != 0 {
			t.Errorf("the refused import left %v", ents)
		}
		if imgs, _ := r.List(); len(imgs) != 0 {
			t.Errorf("the refused import registered %v", imgs)
		}
	}
}

// importWhileRewriting imports src n times while a goroutine writes heads
// over its first bytes in turn, as fast as it can.
func importWhileRewriting(t *testing.T, r Registry, src string, heads [][]byte, n int) (imported, refused int, flips int64) {
	w, err := os.OpenFile(src, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var count atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w.WriteAt(heads[i%len(heads)], 0) // same inode, new bytes
			count.Add(1)
		}
	})
	for i := range n {
		if _, err := r.ImportFile(context.Background(), src, fmt.Sprintf("race%d", i), ImportOptions{}); err == nil {
			imported++
		} else {
			refused++
			if !errors.Is(err, ErrNotDisk) && !errors.Is(err, ErrUnsafeImage) {
				t.Errorf("import %d: %v, want a refusal of the bytes", i, err)
			}
		}
	}
	close(stop)
	wg.Wait()
	return imported, refused, count.Load()
}

// checkBases: no base in r's cache names another file, and every image is
// registered with the format and size its base has.
func checkBases(t *testing.T, r Registry) {
	t.Helper()
	bases, _ := os.ReadDir(r.Layout.BasesDir())
	for _, b := range bases {
		info, err := Inspect(filepath.Join(r.Layout.BasesDir(), b.Name()))
		if err != nil {
			t.Errorf("base %s: %v", b.Name(), err)
			continue
		}
		if info.BackingFile != "" || info.DataFile != "" || info.HasDataFile {
			t.Errorf("base %s was registered with backing file %q, data file %q", b.Name(), info.BackingFile, info.DataFile)
		}
	}
	imgs, _ := r.List()
	for _, img := range imgs {
		info, err := Inspect(img.Path)
		if err != nil || string(info.Format) != img.Format || info.VirtualSize != img.Virtual {
			t.Errorf("image %s is registered as %s of %d bytes, its base is %s of %d (%v)", img.Name, img.Format, img.Virtual, info.Format, info.VirtualSize, err)
		}
	}
}

// hugeQCOW2 writes a well-formed qcow2 (tables that fit the sparse file)
// declaring size bytes.
func hugeQCOW2(t *testing.T, size uint64) string {
	t.Helper()
	be := binary.BigEndian
	h := make([]byte, 512)
	copy(h, qcow2Magic)
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], 21) // 2 MiB clusters: 2^39 bytes per L1 entry
	be.PutUint64(h[24:], size)
	entries := (size + 1<<39 - 1) >> 39
	be.PutUint32(h[36:], uint32(entries))
	be.PutUint64(h[40:], 2<<20)
	be.PutUint32(h[100:], 104)
	p := filepath.Join(t.TempDir(), "huge.qcow2")
	if err := os.WriteFile(p, h, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, int64(2<<20+entries*8)); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportRefusesImpossibleSize(t *testing.T) {
	r := testRegistry(t)
	p := hugeQCOW2(t, 1<<60) // 1 EiB
	info, err := Inspect(p)
	if err != nil || info.Damaged != "" || info.VirtualSize != 1<<60 {
		t.Fatalf("the test image is not a well-formed 1 EiB qcow2: %+v %v", info, err)
	}
	_, err = r.ImportFile(context.Background(), p, "huge", ImportOptions{})
	if !errors.Is(err, ErrNotDisk) || !strings.Contains(err.Error(), "limit of "+vm.FormatSize(vm.MaxDiskBytes)) {
		t.Fatalf("import of a 1 EiB qcow2: %v, want a refusal naming the limit", err)
	}
	if ents, _ := os.ReadDir(r.Layout.BasesDir()); len(ents) != 0 {
		t.Errorf("the refused import left %v", ents)
	}
	// At the limit it is a disk.
	if _, err := r.ImportFile(context.Background(), hugeQCOW2(t, uint64(vm.MaxDiskBytes)), "max", ImportOptions{}); err != nil {
		t.Fatalf("import of a qcow2 at the limit: %v", err)
	}
}

func TestCheckHead(t *testing.T) {
	mbr := make([]byte, 512)
	mbr[510], mbr[511] = 0x55, 0xAA
	gz := append([]byte{0x1f, 0x8b}, make([]byte, 510)...)
	for _, c := range []struct {
		name       string
		head       []byte
		compressed bool
		ok         bool
		says       string
	}{
		{"qcow2", qcow2Header(1<<30, "", ""), false, true, ""},
		{"mbr", mbr, false, true, ""},
		{"gzip download", gz, true, true, ""},
		{"gzip inside", gz, false, false, "compressed twice"},
		{"zeros", make([]byte, 512), false, false, "only zeros"},
		{"html", []byte(strings.Repeat("<html>not found</html>", 30)), false, false, "no partition table"},
		{"empty", nil, false, false, "empty"},
		{"short", []byte("boot"), false, false, "no partition table"},
	} {
		err := checkHead(c.head, "http://x/\n"+c.name, c.compressed)
		if c.ok != (err == nil) || err != nil && (!errors.Is(err, ErrNotDisk) || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// endless serves an endless body of b's bytes and counts what it sent.
func endless(t *testing.T, b byte) (*httptest.Server, *atomic.Int64) {
	var sent atomic.Int64
	buf := bytes.Repeat([]byte{b}, 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 1<<16; i++ { // 4 GiB at most
			n, err := w.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &sent
}

// TestJunkDownloadStopsAtOnce: a download (verified or not) whose first bytes
// are no disk stops there, not after gigabytes, and keeps nothing.
func TestJunkDownloadStopsAtOnce(t *testing.T) {
	srv, sent := endless(t, 0)
	dest := filepath.Join(t.TempDir(), "d", "disk.qcow2")
	t0 := time.Now()
	_, err := Fetch(context.Background(), FetchRequest{URL: srv.URL + "/zeros", Dest: dest, Digest: Digest{SHA256, strings.Repeat("ab", 32)}})
	if !errors.Is(err, ErrNotDisk) || !strings.Contains(err.Error(), "only zeros") {
		t.Fatalf("download of endless zeros: %v", err)
	}
	if took := time.Since(t0); took > 10*time.Second || sent.Load() > 256<<20 {
		t.Errorf("stopped after %s and %d bytes sent", took, sent.Load())
	}
	if left := leftovers(t, filepath.Dir(dest)); len(left) != 0 {
		t.Errorf("left %v", left)
	}

	s := NewService(ServiceOptions{Layout: testRegistry(t).Layout})
	t0 = time.Now()
	_, err = s.ImportImage(context.Background(), api.ImportRequest{Source: srv.URL + "/zeros.img", Name: "z", InsecureSkipVerify: true}, nil)
	if api.CodeOf(err) != api.CodeInvalid || !strings.Contains(err.Error(), "only zeros") || time.Since(t0) > 10*time.Second {
		t.Fatalf("unverified import of endless zeros: %v after %s", err, time.Since(t0))
	}
}

// TestZerosBombStopsAtOnce: a compressed stream of zeros, under the default
// 64 GiB cap, is refused after its first unpacked bytes, and the verified
// download is not kept for a retry (it will never be a disk).
func TestZerosBombStopsAtOnce(t *testing.T) {
	var z bytes.Buffer
	w, _ := zstd.NewWriter(&z)
	zero := make([]byte, 1<<20)
	for range 256 {
		w.Write(zero)
	}
	w.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.Write(z.Bytes()) }))
	defer srv.Close()
	h := SHA256.NewHash()
	h.Write(z.Bytes())
	dest := filepath.Join(t.TempDir(), "bomb")
	t0 := time.Now()
	_, err := Fetch(context.Background(), FetchRequest{URL: srv.URL + "/x.zst", Dest: dest, Digest: hexOf(SHA256, h)})
	if !errors.Is(err, ErrNotDisk) || !strings.Contains(err.Error(), "(unpacked)") {
		t.Fatalf("zeros bomb: %v", err)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("the zeros bomb was refused after %s", took)
	}
	if left := leftovers(t, filepath.Dir(dest)); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

// TestBasesArePrivate: bases are 0400 in a 0700 directory.
func TestBasesArePrivate(t *testing.T) {
	r := testRegistry(t)
	src, _ := rawDisk(t, t.TempDir())
	img, err := r.ImportFile(context.Background(), src, "p", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{img.Path: store.ReadOnlyFile, r.Layout.BasesDir(): store.PrivateDir, r.Layout.ImagesDir(): store.PrivateDir, r.Layout.CacheDir: store.PrivateDir} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", p, st.Mode().Perm(), err, want)
		}
	}
}
