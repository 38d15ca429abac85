package debianbuild

import (
	"bufio"
	"bytes"
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
	{"mkfs.vfat", "dosfstools"},
	{"mmd", "mtools"},
	{"mcopy", "mtools"},
	{"sfdisk", "fdisk"},
	{"dd", "coreutils"},
	{"qemu-img", "qemu-utils"},
}

// fakerootTool is needed without root: mkfs.ext4 must see the tarball's owners.
var fakerootTool = tool{"fakeroot", "fakeroot"}

// foreignTools run a tree of another architecture: mmdebstrap checks with
// arch-test that binfmt_misc runs its programs through qemu-user.
func foreignTools(a archInfo) []tool {
	return []tool{{"arch-test", "arch-test"}, {a.QEMUUser + "-static", "qemu-user-static"}}
}

// binfmtDir is where the kernel lists the registered binfmt_misc handlers.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

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

// toolEnv is what findTools asks of the host; tests fake it.
type toolEnv struct {
	root   bool
	look   func(string) (string, error)
	binfmt func(name string) (string, error) // the content of binfmtDir/name
}

func hostToolEnv() toolEnv {
	return toolEnv{root: os.Geteuid() == 0, look: lookTool, binfmt: func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(binfmtDir, name))
		return string(b), err
	}}
}

// findTools resolves every tool a build of arch on a host of arch host needs, or
// returns one error naming all the missing ones and the apt-get command that installs
// them. A foreign arch also needs its binfmt_misc handler registered and enabled.
func findTools(a archInfo, host string, env toolEnv) (map[string]string, error) {
	need := slices.Clone(buildTools)
	if !env.root {
		need = append(need, fakerootTool)
	}
	foreign := string(a.Arch) != host
	if foreign {
		need = append(need, foreignTools(a)...)
	}
	paths := map[string]string{}
	var missing, pkgs []string
	for _, t := range need {
		p, err := env.look(t.name)
		if err != nil {
			missing = append(missing, t.name)
			if !slices.Contains(pkgs, t.pkg) {
				pkgs = append(pkgs, t.pkg)
			}
			continue
		}
		paths[t.name] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("image build needs %s: install with: sudo apt-get install -y %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if foreign {
		if why := binfmtProblem(env.binfmt, a.QEMUUser); why != "" {
			return nil, fmt.Errorf("an %s image cannot be built on this %s host: %s: register it with `sudo systemctl restart systemd-binfmt`, or without systemd mount binfmt_misc on %s and write /usr/lib/binfmt.d/%s.conf into its register file (scripts/setup.sh does both)",
				a.Arch, host, why, binfmtDir, a.QEMUUser)
		}
	}
	return paths, nil
}

// binfmtProblem says why binfmt_misc does not run programs through the handler
// name, or "" when it does.
func binfmtProblem(read func(string) (string, error), name string) string {
	if _, err := read("status"); err != nil {
		return "binfmt_misc is not mounted on " + binfmtDir
	}
	s, err := read(name)
	if err != nil {
		return fmt.Sprintf("binfmt_misc has no %s handler", name)
	}
	sc := bufio.NewScanner(bytes.NewReader([]byte(s)))
	if sc.Scan() && strings.TrimSpace(sc.Text()) != "enabled" {
		return fmt.Sprintf("the binfmt_misc handler %s is disabled", name)
	}
	return ""
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
