package sshx

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/sftp"
)

// sftpPair serves this machine's filesystem over an in-process SFTP server.
func sftpPair(t *testing.T) *sftp.Client {
	t.Helper()
	a, b := net.Pipe()
	srv, err := sftp.NewServer(a)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	c, err := sftp.NewClientPipe(b, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	return c
}

func writeTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "sub", "deep"), 0o755))
	must(os.WriteFile(filepath.Join(root, "a.txt"), []byte("alpha\n"), 0o640))
	must(os.WriteFile(filepath.Join(root, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(os.WriteFile(filepath.Join(root, "sub", "big.bin"), big, 0o600))
	must(os.WriteFile(filepath.Join(root, "sub", "deep", "empty"), nil, 0o644))
	must(os.Symlink("../a.txt", filepath.Join(root, "sub", "link")))
	must(os.Chmod(filepath.Join(root, "sub", "deep"), 0o750))
}

// digestTree maps relative paths to mode and content (or link target).
func digestTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		fi, _ := os.Lstat(p)
		v := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			v += " " + string(sum[:])
		}
		if rel != "." {
			out[rel] = v
		}
		return nil
	})
	return out
}

func TestCopyRoundTrip(t *testing.T) {
	c := sftpPair(t)
	src := filepath.Join(t.TempDir(), "proj")
	writeTree(t, src)
	vmSide := t.TempDir() // stands in for the VM's filesystem
	var last int64
	st, err := Upload(context.Background(), c, src, vmSide+"/", func(done, total int64) { last = done })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 4 || st.Links != 1 || st.Dirs != 3 || last != st.Bytes || st.Bytes != 3<<20+17+6+18 {
		t.Fatalf("upload stats %+v, progress %d", st, last)
	}
	back := t.TempDir()
	if _, err := Download(context.Background(), c, vmSide+"/proj", back, nil); err != nil {
		t.Fatal(err)
	}
	want, got := digestTree(t, src), digestTree(t, filepath.Join(back, "proj"))
	if len(want) != len(got) {
		t.Fatalf("%d entries back, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
}

func TestCopyTargets(t *testing.T) {
	c := sftpPair(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f.txt")
	os.WriteFile(f, []byte("x"), 0o644)
	// A file onto a new name, into a directory, and a directory's contents with /.
	if _, err := Upload(context.Background(), c, f, dir+"/renamed", nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dir + "/renamed"); string(b) != "x" {
		t.Fatal("file to a new name")
	}
	os.Mkdir(dir+"/into", 0o755)
	if _, err := Upload(context.Background(), c, f, dir+"/into", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/into/f.txt"); err != nil {
		t.Fatal("file into a directory")
	}
	src := filepath.Join(t.TempDir(), "tree")
	writeTree(t, src)
	if _, err := Upload(context.Background(), c, src+"/.", dir+"/contents", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/contents/a.txt"); err != nil {
		t.Fatal("SRC/. copies the contents")
	}
	for _, tc := range []struct{ src, dst, want string }{
		{dir + "/missing", dir + "/x", "missing"},
		{f, dir + "/nodir/", "no such directory"},
		{src, dir + "/renamed", "not a directory"},
	} {
		if _, err := Upload(context.Background(), c, tc.src, tc.dst, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v, want %q", tc.src, tc.dst, err, tc.want)
		}
	}
}
