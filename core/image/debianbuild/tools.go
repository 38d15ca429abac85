package debianbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// tool is an external program the build runs and the Debian package that ships it.
type tool struct{ name, pkg string }

var buildTools = []tool{
	{"mmdebstrap", "mmdebstrap"},
	{"tar", "tar"},
	{"mkfs.ext4", "e2fsprogs"},
	{"grub-mkstandalone", "grub-common"},
	{"mkfs.vfat", "dosfstools"},
	{"mmd", "mtools"},
	{"mcopy", "mtools"},
	{"sfdisk", "fdisk"},
	{"dd", "coreutils"},
	{"qemu-img", "qemu-utils"},
}

// fakerootTool is needed without root: mkfs.ext4 must see the tarball's owners.
var fakerootTool = tool{"fakeroot", "fakeroot"}

// grubEFIDir holds GRUB's x86_64-efi modules (package grub-efi-amd64-bin).
const grubEFIDir = "/usr/lib/grub/x86_64-efi"

// sbinDirs are searched too: non-root users often lack them in PATH, yet mkfs and
// sfdisk work on plain files without privileges.
var sbinDirs = []string{"/usr/sbin", "/sbin"}

// lookTool finds a program in PATH or the sbin directories.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// findTools resolves every tool the build needs, or returns one error naming all the
// missing ones and the apt-get command that installs them.
func findTools(root bool, look func(string) (string, error), dirExists func(string) bool) (map[string]string, error) {
	need := slices.Clone(buildTools)
	if !root {
		need = append(need, fakerootTool)
	}
	paths := map[string]string{}
	var missing, pkgs []string
	for _, t := range need {
		p, err := look(t.name)
		if err != nil {
			missing = append(missing, t.name)
			if !slices.Contains(pkgs, t.pkg) {
				pkgs = append(pkgs, t.pkg)
			}
			continue
		}
		paths[t.name] = p
	}
	if !dirExists(grubEFIDir) {
		missing = append(missing, "GRUB EFI modules ("+grubEFIDir+")")
		pkgs = append(pkgs, "grub-efi-amd64-bin")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("image build needs %s: install with: sudo apt-get install -y %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return paths, nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
