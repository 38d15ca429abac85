// Package debianbuild builds a cloud-init-ready Debian disk image (Debian 12 bookworm
// or 13 trixie, amd64 or arm64) from Debian packages, for hosts that cannot download
// upstream cloud images.
//
// The recipe needs no loop devices and no mounts: mmdebstrap makes a root tarball
// (a foreign architecture runs under qemu-user through binfmt_misc), mkfs.ext4 -d turns
// it into a root filesystem image, a standalone GRUB EFI binary with an embedded config,
// built inside the target tree by the target release's own GRUB, goes onto a FAT image
// made with mkfs.vfat and mtools, sfdisk writes a GPT onto a plain file, dd places both
// partitions, and qemu-img converts the result to qcow2. The image boots under UEFI
// (OVMF, AAVMF) the way upstream cloud images do.
package debianbuild

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// DefaultName is the registry name of an image of the default release for the
// host's architecture, unless Options.Name says otherwise.
const DefaultName = "debian-local"

// DefaultRelease is the Debian release built unless Options.Release says otherwise.
const DefaultRelease = "13"

// SourcePrefix starts api.Image.Source of built images; the cache key follows it.
const SourcePrefix = "debianbuild:"

// ErrNotLinux is returned on hosts other than Linux.
var ErrNotLinux = errors.New("`fvm image build debian` needs a Linux host (it runs mmdebstrap and mkfs): use a catalog image instead")

// ErrBusy means another build of the same image name is running.
var ErrBusy = errors.New("another build of this image is running")

// Options control Build.
type Options struct {
	Layout store.Layout
	// Name registers the image under this name (default: ImageName of the release and arch).
	Name string
	// Release is the Debian version, "12" or "13" (default DefaultRelease).
	Release string
	// Arch is the image's architecture (default: the host's). Another architecture
	// than the host's is built under qemu-user emulation (binfmt_misc).
	Arch vm.Arch
	// Packages are installed on top of the recipe's own.
	Packages []string
	// Force rebuilds even when the registered image was built from the same inputs.
	Force bool
	// Log receives one line per phase with its timing; nil discards them.
	Log io.Writer
	// Sources is an apt sources file (deb822 or one-line) for mmdebstrap; empty picks the
	// host's sources if they name the release's suite, else mmdebstrap's default mirror.
	Sources string
	// RootSize is the size of the root filesystem in bytes (default 2 GiB); cloud-init
	// grows it to fill the VM's disk on first boot.
	RootSize int64
	// Recipe is RecipeLean (the default: made for VMs that fvm runs) or
	// RecipeClassic (the image as fvm built it before, for comparison).
	Recipe string
}

// release is a Debian release the recipe knows.
type release struct {
	Version string // "13"
	Suite   string // "trixie"
}

// releases are the buildable releases, oldest first.
var releases = []release{{"12", "bookworm"}, {"13", "trixie"}}

// Releases lists the buildable Debian versions ("12", "13").
func Releases() []string {
	out := make([]string, len(releases))
	for i, r := range releases {
		out[i] = r.Version
	}
	return out
}

func findRelease(v string) (release, error) {
	if v == "" {
		v = DefaultRelease
	}
	for _, r := range releases {
		if r.Version == v || r.Suite == strings.ToLower(v) {
			return r, nil
		}
	}
	return release{}, fmt.Errorf("--release %s: fvm builds Debian %s: use one of them", v, strings.Join(Releases(), " or "))
}

// archInfo is what the recipe does differently per architecture.
type archInfo struct {
	Arch       vm.Arch
	Kernel     string // the kernel metapackage
	GrubPkg    string // GRUB's EFI modules for grub-mkstandalone
	GrubTarget string // grub-mkstandalone -O
	EFIFile    string // the removable-media boot path's file name in /EFI/BOOT
	Console    string // the serial console of QEMU's machine (q35: 16550 UART; virt: PL011)
	QEMUUser   string // binfmt_misc entry and qemu-user-static binary (qemu-X-static)
}

var arches = map[vm.Arch]archInfo{
	vm.AMD64: {vm.AMD64, "linux-image-amd64", "grub-efi-amd64-bin", "x86_64-efi", "BOOTX64.EFI", "ttyS0", "qemu-x86_64"},
	vm.ARM64: {vm.ARM64, "linux-image-arm64", "grub-efi-arm64-bin", "arm64-efi", "BOOTAA64.EFI", "ttyAMA0", "qemu-aarch64"},
}

func findArch(a vm.Arch, host vm.Arch) (archInfo, error) {
	if a == "" {
		a = host
	}
	p, err := vm.ParseArch(string(a))
	if err != nil {
		return archInfo{}, fmt.Errorf("--arch %s: fvm builds amd64 and arm64 images", a)
	}
	return arches[p], nil
}

// ImageName is the registry name of a build of release for arch on a host of
// arch host: debian-local for the default release and the host's arch (what the
// quick start and the e2e tests use); the release when it is not the default
// (debian-12-local), the arch when it is not the host's (debian-local-arm64).
func ImageName(releaseVersion string, arch, host vm.Arch) string {
	name := "debian"
	if releaseVersion != "" && releaseVersion != DefaultRelease {
		name += "-" + releaseVersion
	}
	name += "-local"
	if arch != "" && arch != host {
		name += "-" + string(arch)
	}
	return name
}

// debPackageName is Debian policy's package name syntax.
var debPackageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// ParsePackages splits a comma-separated --packages value, one error naming a bad name.
func ParsePackages(list []string) ([]string, error) {
	var out []string
	for _, item := range list {
		for _, p := range strings.Split(item, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if !debPackageName.MatchString(p) {
				return nil, fmt.Errorf("--packages %q: not a Debian package name (lowercase letters, digits and + - . only)", p)
			}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}
