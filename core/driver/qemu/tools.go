package qemu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

// systemBinary is the qemu-system-* binary name for a guest architecture.
func systemBinary(arch vm.Arch) string {
	if arch == vm.ARM64 {
		return "qemu-system-aarch64"
	}
	return "qemu-system-x86_64"
}

// extraBinDirs are searched after PATH: a daemon started by launchd or systemd
// often lacks Homebrew's bin directories in its PATH.
var extraBinDirs = []string{"/opt/homebrew/bin", "/usr/local/bin", "/usr/bin"}

// lookBinary finds name in PATH or extraBinDirs and resolves symlinks, so the
// path can later be compared with a process's executable.
func lookBinary(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		for _, d := range extraBinDirs {
			c := filepath.Join(d, name)
			if st, serr := os.Stat(c); serr == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				p, err = c, nil
				break
			}
		}
	}
	if err != nil {
		return "", fmt.Errorf("%s not found: install it with `%s`", name, installHint(name))
	}
	if r, rerr := filepath.EvalSymlinks(p); rerr == nil {
		p = r
	}
	return filepath.Abs(p)
}

// DefaultQEMUPath finds qemu-system-x86_64 or qemu-system-aarch64 for arch.
func DefaultQEMUPath(arch vm.Arch) (string, error) { return lookBinary(systemBinary(arch)) }

// installHint is the command that installs a binary or firmware file on this OS.
func installHint(what string) string {
	if runtime.GOOS == "darwin" {
		return "brew install qemu"
	}
	pkg := map[string]string{
		"qemu-system-x86_64":  "qemu-system-x86",
		"qemu-system-aarch64": "qemu-system-arm",
		"qemu-img":            "qemu-utils",
		"firmware-amd64":      "ovmf",
		"firmware-arm64":      "qemu-efi-aarch64",
	}[what]
	if pkg == "" {
		pkg = what
	}
	return "sudo apt-get install " + pkg
}

// binaryVersion returns the first line of `bin --version`, e.g. "QEMU emulator version 7.2.22".
func binaryVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, nil
}

// Firmware is a UEFI code image and the template of its variable store.
type Firmware struct {
	Code string // read-only pflash unit 0
	Vars string // template copied per VM into pflash unit 1
}

// firmwarePairs are known (code, vars) file names per guest arch, best first. The
// plain builds are chosen over secure-boot ones, which need SMM and enrolled keys.
var firmwarePairs = map[vm.Arch][][2]string{
	vm.AMD64: {
		{"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"},       // Debian 12+, Ubuntu 22.04+
		{"OVMF_CODE.4m.fd", "OVMF_VARS.4m.fd"},       // Arch
		{"OVMF_CODE.fd", "OVMF_VARS.fd"},             // Fedora, older Debian
		{"edk2-x86_64-code.fd", "edk2-i386-vars.fd"}, // QEMU's own build (Homebrew)
	},
	vm.ARM64: {
		{"AAVMF_CODE.fd", "AAVMF_VARS.fd"},                  // Debian, Ubuntu
		{"QEMU_EFI-pflash.raw", "vars-template-pflash.raw"}, // Fedora
		{"edk2-aarch64-code.fd", "edk2-arm-vars.fd"},        // QEMU's own build (Homebrew)
	},
}

// defaultFirmwareDirs are where distributions and Homebrew install edk2 builds.
var defaultFirmwareDirs = []string{
	"/usr/share/OVMF", "/usr/share/AAVMF", "/usr/share/qemu-efi-aarch64",
	"/usr/share/edk2/ovmf", "/usr/share/edk2/x64", "/usr/share/edk2/aarch64",
	"/usr/share/qemu", "/opt/homebrew/share/qemu", "/usr/local/share/qemu",
}

// FindFirmware looks for UEFI firmware for arch in dirs, then beside the QEMU
// binary (<prefix>/share/qemu, as Homebrew lays it out), then the usual places.
func FindFirmware(arch vm.Arch, qemuPath string, dirs []string) (Firmware, error) {
	search := append([]string{}, dirs...)
	if qemuPath != "" {
		search = append(search, filepath.Join(filepath.Dir(filepath.Dir(qemuPath)), "share", "qemu"))
	}
	search = append(search, defaultFirmwareDirs...)
	for _, d := range search {
		for _, pair := range firmwarePairs[arch] {
			fw := Firmware{Code: filepath.Join(d, pair[0]), Vars: filepath.Join(d, pair[1])}
			if isFile(fw.Code) && isFile(fw.Vars) {
				return fw, nil
			}
		}
	}
	return Firmware{}, fmt.Errorf("no UEFI firmware for %s found (looked for %s in %s): install it with `%s`",
		arch, firmwarePairs[arch][0][0], strings.Join(search, ", "), installHint("firmware-"+string(arch)))
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
