package libvirt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
)

// fakePool is an in-memory pool.
type fakePool struct {
	mu      sync.Mutex
	vols    map[string][]byte
	free    uint64
	cutAt   int  // upload fails after this many bytes (0: never)
	corrupt bool // the far side stores a flipped byte
	uploads int
}

func newFakePool() *fakePool { return &fakePool{vols: map[string][]byte{}, free: 1 << 40} }

func (f *fakePool) available(context.Context) (uint64, error) { return f.free, nil }
func (f *fakePool) exists(_ context.Context, n string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.vols[n]
	return ok, nil
}
func (f *fakePool) create(_ context.Context, x string) error {
	i, j := strings.Index(x, "<name>"), strings.Index(x, "</name>")
	f.mu.Lock()
	defer f.mu.Unlock()
	n := x[i+6 : j]
	if _, ok := f.vols[n]; ok {
		return errors.New("exists")
	}
	f.vols[n] = []byte{}
	return nil
}
func (f *fakePool) remove(_ context.Context, n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.vols, n)
	return nil
}
func (f *fakePool) upload(_ context.Context, n string, r io.Reader, size uint64) error {
	f.mu.Lock()
	f.uploads++
	cut := f.cutAt
	f.mu.Unlock()
	var buf bytes.Buffer
	var err error
	if cut > 0 {
		_, err = io.CopyN(&buf, r, int64(cut))
		if err == nil {
			err = errors.New("connection reset by peer")
		}
	} else {
		_, err = io.Copy(&buf, r)
	}
	b := buf.Bytes()
	if f.corrupt && len(b) > 0 {
		b[len(b)/2] ^= 1
	}
	f.mu.Lock()
	f.vols[n] = b
	f.mu.Unlock()
	return err
}
func (f *fakePool) download(_ context.Context, n string, w io.Writer) error {
	f.mu.Lock()
	b := f.vols[n]
	f.mu.Unlock()
	_, err := w.Write(b)
	return err
}
func (f *fakePool) path(_ context.Context, n string) (string, error) { return "/pool/" + n, nil }
func (f *fakePool) list(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.vols {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}
func (f *fakePool) refresh(context.Context) error { return nil }

func testBase(content []byte) baseSource {
	sum := sha256.Sum256(content)
	return baseSource{
		Digest: "sha256:" + hex.EncodeToString(sum[:]), Format: "qcow2", Size: int64(len(content)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil },
	}
}

func TestEnsureBase(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("fvm base "), 100000)
	b := testBase(content)
	p := newFakePool()
	var phases []string
	vol, err := ensureBase(ctx, p, "pool fvm", b, func(phase string, done, total int64) {
		if len(phases) == 0 || phases[len(phases)-1] != phase {
			phases = append(phases, phase)
		}
		if total != b.Size || done > total {
			t.Errorf("progress %s %d/%d", phase, done, total)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if vol != baseVolume(b.Digest, "qcow2") || !bytes.Equal(p.vols[vol], content) {
		t.Fatalf("volume %s holds %d bytes", vol, len(p.vols[vol]))
	}
	if _, ok := p.vols[baseMarker(b.Digest)]; !ok {
		t.Fatal("no marker after a checked upload")
	}
	if strings.Join(phases, ",") != "upload,verify" {
		t.Errorf("progress phases %v", phases)
	}
	// Once per digest.
	if _, err := ensureBase(ctx, p, "pool fvm", b, nil); err != nil || p.uploads != 1 {
		t.Fatalf("second ensure: %v, %d uploads", err, p.uploads)
	}
}

// TestEnsureBaseRestarts: a volume without its marker (a cut upload, a killed
// host) is uploaded again; a marker without its volume too.
func TestEnsureBaseRestarts(t *testing.T) {
	ctx := context.Background()
	content := []byte(strings.Repeat("x", 5000))
	b := testBase(content)
	p := newFakePool()
	p.vols[baseVolume(b.Digest, "qcow2")] = content[:100] // half-made
	if _, err := ensureBase(ctx, p, "pool", b, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.vols[baseVolume(b.Digest, "qcow2")], content) || p.uploads != 1 {
		t.Fatal("the incomplete volume was kept")
	}
	delete(p.vols, baseVolume(b.Digest, "qcow2"))
	if _, err := ensureBase(ctx, p, "pool", b, nil); err != nil || p.uploads != 2 {
		t.Fatalf("marker without volume: %v, %d uploads", err, p.uploads)
	}
}

// TestEnsureBaseFailures: a cut upload, a damaged one and a full pool each
// fail in one line naming the pool and leave no volume behind.
func TestEnsureBaseFailures(t *testing.T) {
	ctx := context.Background()
	b := testBase(bytes.Repeat([]byte{7}, 1<<20))
	for name, tc := range map[string]struct {
		setup func(*fakePool)
		want  string
	}{
		"cut":     {func(p *fakePool) { p.cutAt = 1000 }, "upload of base " + short(b.Digest) + " was cut"},
		"damaged": {func(p *fakePool) { p.corrupt = true }, "reads back as"},
		"full":    {func(p *fakePool) { p.free = 1000 }, "has 0 KiB free, the base " + short(b.Digest) + " needs 1.0 MiB"},
	} {
		t.Run(name, func(t *testing.T) {
			p := newFakePool()
			tc.setup(p)
			_, err := ensureBase(ctx, p, "libvirt qemu:///system pool fvm", b, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "libvirt qemu:///system pool fvm") {
				t.Fatalf("err = %v, want one naming the pool with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if names, _ := p.list(ctx); len(names) != 0 {
				t.Fatalf("left behind: %v", names)
			}
		})
	}
}

func TestUnusedBases(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	names := []string{"sha256-" + a + ".qcow2", "sha256-" + a + ".ok", "sha256-" + b + ".raw", "sha256-" + b + ".ok",
		"fvm-web.qcow2", "fvm-web-seed.iso", "sha256-short.qcow2", "other.img"}
	got := unusedBases(names, func(d string) bool { return d == "sha256:"+a })
	want := []string{"sha256-" + b + ".raw", "sha256-" + b + ".ok"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("unusedBases = %v, want %v", got, want)
	}
}
