//go:build linux

package debianbuild

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writeRootTar writes a tiny root tarball with the things a plain copy loses:
// foreign owners, a setgid directory and a device node.
func writeRootTar(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(h tar.Header, body string) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add(tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(tar.Header{Name: "./etc/shadow", Typeflag: tar.TypeReg, Mode: 0o640, Gid: 42}, "root:*:1::::::\n")
	add(tar.Header{Name: "./var/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(tar.Header{Name: "./var/mail/", Typeflag: tar.TypeDir, Mode: 0o2775, Gid: 8}, "")
	add(tar.Header{Name: "./home/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(tar.Header{Name: "./home/u/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 1000, Gid: 1000}, "")
	add(tar.Header{Name: "./dev/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, "")
	add(tar.Header{Name: "./vmlinuz", Typeflag: tar.TypeSymlink, Linkname: "boot/vmlinuz-6.1.0-1-amd64"}, "")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestRootfsCommands runs the tar → mkfs.ext4 -d step on a tiny tarball and reads the
// result back with debugfs. The fakeroot variant is what builds without root use.
func TestRootfsCommands(t *testing.T) {
	tools := map[string]string{}
	for _, n := range []string{"tar", "mkfs.ext4", "debugfs"} {
		p, err := lookTool(n)
		if err != nil {
			t.Skipf("%s not installed", n)
		}
		tools[n] = p
	}
	variants := map[string]bool{}
	if os.Geteuid() == 0 {
		variants["root"] = false
	}
	if p, err := lookTool("fakeroot"); err == nil {
		tools["fakeroot"] = p
		variants["fakeroot"] = true
	}
	if len(variants) == 0 {
		t.Skip("neither root nor fakeroot (package fakeroot)")
	}
	for name, fake := range variants {
		t.Run(name, func(t *testing.T) {
			tl := map[string]string{"tar": tools["tar"], "mkfs.ext4": tools["mkfs.ext4"]}
			if fake {
				tl["fakeroot"] = tools["fakeroot"]
			}
			d := t.TempDir()
			tarball, dir, img := filepath.Join(d, "rootfs.tar"), filepath.Join(d, "rootfs"), filepath.Join(d, "root.img")
			writeRootTar(t, tarball)
			os.Mkdir(dir, 0o755)
			os.WriteFile(img, nil, 0o644)
			os.Truncate(img, 16<<20)
			uuid := newUUID()
			cmds := rootfsCommands(tl, tarball, dir, img, uuid)
			if fake != (len(cmds) == 1) {
				t.Fatalf("fakeroot=%v gave %d commands", fake, len(cmds))
			}
			for _, argv := range cmds {
				if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
					t.Fatalf("%q: %v\n%s", argv, err, out)
				}
			}
			debugfs := func(req string) string {
				out, err := exec.Command(tools["debugfs"], "-R", req, img).CombinedOutput()
				if err != nil {
					t.Fatalf("debugfs %s: %v\n%s", req, err, out)
				}
				return string(out)
			}
			owner := regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+)`)
			for path, want := range map[string][2]string{
				"/etc/shadow": {"0", "42"}, "/var/mail": {"0", "8"}, "/home/u": {"1000", "1000"}, "/dev/null": {"0", "0"},
			} {
				m := owner.FindStringSubmatch(debugfs("stat " + path))
				if m == nil || m[1] != want[0] || m[2] != want[1] {
					t.Errorf("%s owned by %v, want %v", path, m, want)
				}
			}
			if st := debugfs("stat /dev/null"); !strings.Contains(st, "Type: character special") {
				t.Errorf("/dev/null is not a device node:\n%s", st)
			}
			if st := debugfs("stat /var/mail"); !strings.Contains(st, "Mode:  02775") {
				t.Errorf("/var/mail lost its setgid mode:\n%s", st)
			}
			if got := debugfs("stats"); !strings.Contains(got, uuid) || !strings.Contains(got, rootLabel) {
				t.Errorf("filesystem UUID/label not set:\n%s", got)
			}
		})
	}
}
