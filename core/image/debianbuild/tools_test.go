package debianbuild

import (
	"os/exec"
	"strings"
	"testing"
)

func TestFindToolsNamesMissingAndPackages(t *testing.T) {
	have := map[string]bool{"mmdebstrap": true, "tar": true, "mkfs.ext4": true, "grub-mkstandalone": true,
		"sfdisk": true, "dd": true, "qemu-img": true}
	look := func(n string) (string, error) {
		if have[n] {
			return "/usr/bin/" + n, nil
		}
		return "", exec.ErrNotFound
	}
	_, err := findTools(true, look, func(string) bool { return false })
	if err == nil {
		t.Fatal("findTools with missing tools succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"mkfs.vfat", "mcopy", "apt-get install -y dosfstools mtools grub-efi-amd64-bin"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Count(msg, "mtools") != 1 || strings.Contains(msg, "\n") {
		t.Errorf("error must be one line naming each package once: %q", msg)
	}
	if strings.Contains(msg, "fakeroot") {
		t.Error("root does not need fakeroot")
	}

	for _, n := range []string{"mkfs.vfat", "mmd", "mcopy"} {
		have[n] = true
	}
	paths, err := findTools(true, look, func(string) bool { return true })
	if err != nil || paths["mcopy"] != "/usr/bin/mcopy" {
		t.Fatalf("findTools = %v, %v", paths, err)
	}
	if _, err := findTools(false, look, func(string) bool { return true }); err == nil || !strings.Contains(err.Error(), "fakeroot") {
		t.Fatalf("without root fakeroot is required: %v", err)
	}
}
