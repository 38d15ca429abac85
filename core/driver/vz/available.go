package vz

import "fmt"

// MinMacOS is the oldest macOS the vz backend runs on: EFI boot of Linux
// guests (VZEFIBootLoader) and virtio-gpu displays need macOS 13.
const MinMacOS = 13

// Unavailable says why this host cannot run vz VMs, "" when it can. version
// is MacOSVersion().
func Unavailable(goos, version string) string {
	if goos != "darwin" {
		return fmt.Sprintf("vz needs macOS %d+ (Apple's Virtualization framework): use --backend qemu", MinMacOS)
	}
	if !macOSAtLeast(version, MinMacOS) {
		if version == "" {
			version = "unknown"
		}
		return fmt.Sprintf("vz needs macOS %d+ (this Mac runs macOS %s): use --backend qemu", MinMacOS, version)
	}
	return ""
}
