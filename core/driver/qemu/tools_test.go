package qemu

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/vm"
)

func TestSystemBinaryPerArch(t *testing.T) {
	if systemBinary(vm.AMD64) != "qemu-system-x86_64" || systemBinary(vm.ARM64) != "qemu-system-aarch64" {
		t.Errorf("systemBinary: %s, %s", systemBinary(vm.AMD64), systemBinary(vm.ARM64))
	}
	if runtime.GOOS != "linux" {
		t.Skip("install hints below are Debian's")
	}
	for what, pkg := range map[string]string{
		"qemu-system-x86_64": "qemu-system-x86", "qemu-system-aarch64": "qemu-system-arm",
		"firmware-amd64": "ovmf", "firmware-arm64": "qemu-efi-aarch64", "qemu-img": "qemu-utils",
	} {
		if got := installHint(what); got != "sudo apt-get install "+pkg {
			t.Errorf("installHint(%s) = %q", what, got)
		}
	}
}

func TestLookBinaryNamesPackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	old := extraBinDirs
	extraBinDirs = []string{t.TempDir()}
	defer func() { extraBinDirs = old }()
	_, err := lookBinary("qemu-system-aarch64")
	if err == nil || !strings.Contains(err.Error(), "qemu-system-aarch64 not found") || (runtime.GOOS == "linux" && !strings.Contains(err.Error(), "qemu-system-arm")) {
		t.Errorf("lookBinary: %v", err)
	}
	dir := extraBinDirs[0]
	os.WriteFile(filepath.Join(dir, "qemu-system-aarch64"), []byte("#!/bin/sh\n"), 0o755)
	if p, err := lookBinary("qemu-system-aarch64"); err != nil || p != filepath.Join(dir, "qemu-system-aarch64") {
		t.Errorf("lookBinary in an extra dir: %q, %v", p, err)
	}
}

// Each arch finds its own firmware pair in the layouts distributions use, and
// never the other arch's.
func TestFindFirmwarePerArch(t *testing.T) {
	layout := func(files ...string) string {
		d := t.TempDir()
		for _, f := range files {
			os.WriteFile(filepath.Join(d, f), []byte(f), 0o644)
		}
		return d
	}
	debianX86 := layout("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", "OVMF_CODE_4M.secboot.fd")
	debianARM := layout("AAVMF_CODE.fd", "AAVMF_VARS.fd", "AAVMF_CODE.ms.fd")
	fedoraARM := layout("QEMU_EFI-pflash.raw", "vars-template-pflash.raw")
	brew := layout("edk2-x86_64-code.fd", "edk2-i386-vars.fd", "edk2-aarch64-code.fd", "edk2-arm-vars.fd")
	codeOnly := layout("AAVMF_CODE.fd") // a pair needs both files
	for _, tc := range []struct {
		arch vm.Arch
		dirs []string
		code string
	}{
		{vm.AMD64, []string{debianARM, debianX86}, filepath.Join(debianX86, "OVMF_CODE_4M.fd")},
		{vm.ARM64, []string{debianX86, debianARM}, filepath.Join(debianARM, "AAVMF_CODE.fd")},
		{vm.ARM64, []string{codeOnly, fedoraARM}, filepath.Join(fedoraARM, "QEMU_EFI-pflash.raw")},
		{vm.ARM64, []string{brew}, filepath.Join(brew, "edk2-aarch64-code.fd")},
		{vm.AMD64, []string{brew}, filepath.Join(brew, "edk2-x86_64-code.fd")},
	} {
		fw, err := FindFirmware(tc.arch, "", tc.dirs)
		if err != nil || fw.Code != tc.code {
			t.Errorf("%s in %v: %+v, %v; want %s", tc.arch, tc.dirs, fw, err, tc.code)
		}
	}
	// Homebrew's layout beside the binary: <prefix>/bin/qemu-system-aarch64 → <prefix>/share/qemu.
	prefix := t.TempDir()
	os.MkdirAll(filepath.Join(prefix, "share", "qemu"), 0o755)
	for _, f := range []string{"edk2-aarch64-code.fd", "edk2-arm-vars.fd"} {
		os.WriteFile(filepath.Join(prefix, "share", "qemu", f), nil, 0o644)
	}
	if fw, err := FindFirmware(vm.ARM64, filepath.Join(prefix, "bin", "qemu-system-aarch64"), []string{debianX86}); err != nil || !strings.HasPrefix(fw.Code, prefix) {
		t.Errorf("firmware beside the binary: %+v, %v", fw, err)
	}
	old := defaultFirmwareDirs
	defaultFirmwareDirs = nil
	defer func() { defaultFirmwareDirs = old }()
	_, err := FindFirmware(vm.ARM64, "", []string{debianX86, codeOnly})
	if err == nil || !strings.Contains(err.Error(), "no UEFI firmware for arm64") || !strings.Contains(err.Error(), "AAVMF_CODE.fd") {
		t.Fatalf("missing arm64 firmware: %v", err)
	}
	if runtime.GOOS == "linux" && !strings.Contains(err.Error(), "qemu-efi-aarch64") {
		t.Errorf("the error does not say which package to install: %v", err)
	}
}
