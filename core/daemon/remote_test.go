package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
)

// rawDisk is a small raw disk by content (an MBR signature).
func rawDisk() []byte {
	b := make([]byte, 1<<20)
	b[510], b[511] = 0x55, 0xAA
	return b
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestUploadThenImport(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	ctx := context.Background()
	disk := rawDisk()
	var seen int64
	up, err := h.c.Upload(ctx, "my disk.raw", bytes.NewReader(disk), int64(len(disk)), func(n int64) { seen = n })
	if err != nil {
		t.Fatal(err)
	}
	if up.Size != int64(len(disk)) || up.Name != "my disk.raw" || seen != up.Size || !strings.HasPrefix(up.Digest, "sha256:") {
		t.Fatalf("upload %+v, progress %d", up, seen)
	}
	img, err := h.c.ImportImage(ctx, api.ImportRequest{Upload: up.Digest, Source: "my disk.raw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "my-disk" || img.Digest != up.Digest || img.Source != "upload:my disk.raw" {
		t.Fatalf("imported %+v", img)
	}
	if got := entries(t, h.layout.UploadsDir()); len(got) != 0 {
		t.Fatalf("the upload is still there after its import: %v", got)
	}
	if _, err := h.c.ImportImage(ctx, api.ImportRequest{Upload: up.Digest}, nil); !api.IsNotFound(err) {
		t.Fatalf("a used upload imported again: %v", err)
	}
	// A --checksum is compared with the upload's digest.
	up, _ = h.c.Upload(ctx, "d.raw", bytes.NewReader(disk), int64(len(disk)), nil)
	_, err = h.c.ImportImage(ctx, api.ImportRequest{Upload: up.Digest, Name: "other", Checksum: "sha256:" + strings.Repeat("0", 64)}, nil)
	if api.CodeOf(err) != api.CodeInvalid || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("a wrong --checksum: %v", err)
	}
}

// failingReader gives n bytes, then fails: a client's file that could not be read.
type failingReader struct{ r io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("disk on fire")
	}
	return n, err
}

func TestCutUploadLeavesNothing(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	ctx := context.Background()
	disk := rawDisk()
	if _, err := h.c.Upload(ctx, "d.raw", &failingReader{bytes.NewReader(disk[:4096])}, int64(len(disk)), nil); err == nil {
		t.Fatal("a cut upload succeeded")
	}
	// The host ends the request in its own time: look until it has.
	for i := 0; i < 100 && len(entries(t, h.layout.UploadsDir())) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if got := entries(t, h.layout.UploadsDir()); len(got) != 0 {
		t.Fatalf("a cut upload left %v", got)
	}
	if imgs, _ := h.c.Images(ctx); len(imgs) != 0 {
		t.Fatalf("images after a cut upload: %v", imgs)
	}
}

// rawUpload posts bytes with a given trailer digest, as a bad client would.
func rawUpload(t *testing.T, socket string, body []byte, size int, digest string) (int, string) {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s?name=x.raw HTTP/1.1\r\nHost: fvm\r\n%s: %d\r\nTransfer-Encoding: chunked\r\nTrailer: %s\r\n\r\n", api.UploadsPath, api.UploadSizeHeader, size, api.UploadDigestHeader)
	fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n", len(body), body)
	if digest != "" {
		fmt.Fprintf(c, "%s: %s\r\n", api.UploadDigestHeader, digest)
	}
	fmt.Fprint(c, "\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestUploadRefusals(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	body := []byte("some bytes")
	for _, c := range []struct {
		size   int
		digest string
		want   string
	}{
		{len(body), "sha256:" + strings.Repeat("a", 64), "arrived altered"},
		{len(body), "", "no digest followed"},
		{len(body) + 5, "sha256:" + strings.Repeat("a", 64), "bytes arrived where"},
	} {
		status, msg := rawUpload(t, h.layout.SocketPath(), body, c.size, c.digest)
		if status != http.StatusBadRequest || !strings.Contains(msg, c.want) || !strings.Contains(msg, "nothing was kept") {
			t.Errorf("size %d digest %q: %d %s, want 400 with %q", c.size, c.digest, status, msg, c.want)
		}
	}
	if got := entries(t, h.layout.UploadsDir()); len(got) != 0 {
		t.Fatalf("refused uploads left %v", got)
	}
}

func TestCreateFromUploadedISO(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	ctx := context.Background()
	iso, _ := os.ReadFile(fakeISO(t))
	up, err := h.c.Upload(ctx, "installer.iso", bytes.NewReader(iso), int64(len(iso)), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := h.c.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "inst1", DiskBytes: 4 << 30}, ISOUpload: up.Digest})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(v.Spec.ISO) != "installer.iso" || !strings.HasPrefix(v.Spec.ISO, h.layout.UploadsDir()) {
		t.Fatalf("the VM installs from %q", v.Spec.ISO)
	}
	old := time.Now().Add(-2 * uploadKeep)
	os.Chtimes(filepath.Dir(v.Spec.ISO), old, old)
	if _, err := h.c.PruneImages(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.Spec.ISO); err != nil {
		t.Fatalf("prune removed the ISO a VM installs from: %v", err)
	}
	if err := h.c.Remove(ctx, "inst1", true); err != nil {
		t.Fatal(err)
	}
	res, err := h.c.PruneImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.Spec.ISO); !os.IsNotExist(err) || len(res.Removed) == 0 {
		t.Fatalf("prune kept the ISO of a removed VM: %v (removed %v)", err, res.Removed)
	}
	if _, err := h.c.Create(ctx, api.CreateRequest{Spec: vm.Spec{Name: "inst2"}, ISOUpload: "sha256:" + strings.Repeat("b", 64)}); !api.IsNotFound(err) {
		t.Fatalf("create from a missing upload: %v", err)
	}
}

func TestConsoleTunnelAcceptsTheClientsPort(t *testing.T) {
	h := startHost(t, &fakeDriver{running: map[string]*fakeMachine{}})
	ctx := context.Background()
	get := func(c net.Conn, host string) int {
		t.Helper()
		fmt.Fprintf(c, "GET /nothing HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	c, err := h.c.DialConsole(ctx, 45678)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := get(c, "127.0.0.1:45678"); st != http.StatusNotFound { // past the Host check
		t.Fatalf("the tunnel's Host: %d, want 404 from the console itself", st)
	}
	c2, err := h.c.DialConsole(ctx, 45679)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if st := get(c2, "evil.example:45678"); st != http.StatusForbidden {
		t.Fatalf("a foreign Host through the tunnel: %d, want 403", st)
	}
	if _, err := h.c.DialGuest(ctx, "ghost", 80); !api.IsNotFound(err) {
		t.Fatalf("a tunnel to a missing VM: %v", err)
	}
}

func TestUploadName(t *testing.T) {
	for in, want := range map[string]string{
		"disk.qcow2": "disk.qcow2", "/x/y/disk.img": "disk.img", ".hidden.iso": "hidden.iso",
		"..": "upload", "": "upload", "a b.raw": "a b.raw",
	} {
		if got, err := uploadName(in); err != nil || got != want {
			t.Errorf("uploadName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"bad\x00name", strings.Repeat("x", 200), "tab\there"} {
		if got, err := uploadName(in); err == nil {
			t.Errorf("uploadName(%q) = %q, want an error", in, got)
		}
	}
}
