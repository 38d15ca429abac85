package debianbuild

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/vm"
)

func fakeEnv(root bool, have map[string]bool, binfmt map[string]string) toolEnv {
	return toolEnv{
		root: root,
		look: func(n string) (string, error) {
			if have[n] {
				return "/usr/bin/" + n, nil
			}
			return "", exec.ErrNotFound
		},
		binfmt: func(n string) (string, error) {
			if s, ok := binfmt[n]; ok {
				return s, nil
			}
			return "", errors.New("no such file")
		},
	}
}

func TestFindToolsNamesMissingAndPackages(t *testing.T) {
	have := map[string]bool{"mmdebstrap": true, "tar": true, "mkfs.ext4": true, "sfdisk": true, "dd": true, "qemu-img": true}
	amd64 := arches[vm.AMD64]
	_, err := findTools(amd64, "amd64", fakeEnv(true, have, nil))
	if err == nil {
		t.Fatal("findTools with missing tools succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"mkfs.vfat", "mcopy", "apt-get install -y dosfstools mtools"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Count(msg, "mtools") != 1 || strings.Contains(msg, "\n") {
		t.Errorf("error must be one line naming each package once: %q", msg)
	}
	if strings.Contains(msg, "fakeroot") || strings.Contains(msg, "qemu-user-static") || strings.Contains(msg, "grub") {
		t.Errorf("a native root build needs no fakeroot, qemu-user or host GRUB: %q", msg)
	}

	for _, n := range []string{"mkfs.vfat", "mmd", "mcopy"} {
		have[n] = true
	}
	paths, err := findTools(amd64, "amd64", fakeEnv(true, have, nil))
	if err != nil || paths["mcopy"] != "/usr/bin/mcopy" {
		t.Fatalf("findTools = %v, %v", paths, err)
	}
	if _, err := findTools(amd64, "amd64", fakeEnv(false, have, nil)); err == nil || !strings.Contains(err.Error(), "fakeroot") {
		t.Fatalf("without root fakeroot is required: %v", err)
	}
}

// A foreign arch needs qemu-user-static, arch-test and a registered, enabled
// binfmt_misc handler; each gap is one line with its fix.
func TestFindToolsForeignArch(t *testing.T) {
	have := map[string]bool{}
	for _, tl := range buildTools {
		have[tl.name] = true
	}
	arm64 := arches[vm.ARM64]
	_, err := findTools(arm64, "amd64", fakeEnv(true, have, nil))
	if err == nil || !strings.Contains(err.Error(), "arch-test, qemu-aarch64-static") || !strings.Contains(err.Error(), "apt-get install -y arch-test qemu-user-static") {
		t.Fatalf("foreign build without qemu-user: %v", err)
	}
	have["arch-test"], have["qemu-aarch64-static"] = true, true
	for _, tc := range []struct {
		binfmt map[string]string
		want   string
	}{
		{nil, "binfmt_misc is not mounted on /proc/sys/fs/binfmt_misc"},
		{map[string]string{"status": "enabled\n"}, "binfmt_misc has no qemu-aarch64 handler"},
		{map[string]string{"status": "enabled\n", "qemu-aarch64": "disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"}, "handler qemu-aarch64 is disabled"},
	} {
		_, err := findTools(arm64, "amd64", fakeEnv(true, have, tc.binfmt))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "systemd-binfmt") || strings.Contains(err.Error(), "\n") {
			t.Errorf("binfmt %v: %v, want one line with %q and the fix", tc.binfmt, err, tc.want)
		}
	}
	ok := map[string]string{"status": "enabled\n", "qemu-aarch64": "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\n"}
	if paths, err := findTools(arm64, "amd64", fakeEnv(true, have, ok)); err != nil || paths["arch-test"] == "" {
		t.Fatalf("foreign build with binfmt: %v, %v", paths, err)
	}
	// arm64 on an arm64 host is native: no emulation asked for.
	delete(have, "arch-test")
	if _, err := findTools(arm64, "arm64", fakeEnv(true, have, nil)); err != nil {
		t.Fatalf("native arm64 build: %v", err)
	}
	// amd64 images on an arm64 host go through qemu-x86_64.
	if _, err := findTools(arches[vm.AMD64], "arm64", fakeEnv(true, have, ok)); err == nil || !strings.Contains(err.Error(), "qemu-x86_64") {
		t.Fatalf("amd64 on arm64: %v", err)
	}
}
