// Package debianbuild builds a cloud-init-ready Debian 12 (bookworm) amd64 disk image
// from Debian packages, for hosts that cannot download upstream cloud images.
//
// The recipe needs no loop devices and no mounts: mmdebstrap makes a root tarball,
// mkfs.ext4 -d turns it into a root filesystem image, a standalone GRUB EFI binary with
// an embedded config goes onto a FAT image made with mkfs.vfat and mtools, sfdisk writes
// a GPT onto a plain file, dd places both partitions, and qemu-img converts the result to
// qcow2. The image boots under UEFI (OVMF) the way upstream cloud images do.
package debianbuild

import (
	"errors"
	"io"

	"github.com/fvmhq/fvm/core/store"
)

// DefaultName is the registry name of the built image unless Options.Name says otherwise.
const DefaultName = "debian-local"

// SourcePrefix starts api.Image.Source of built images; the cache key follows it.
const SourcePrefix = "debianbuild:"

// ErrNotLinux is returned on hosts other than Linux.
var ErrNotLinux = errors.New("`fvm image build debian` needs a Linux host (it runs mmdebstrap and mkfs): use a catalog image instead")

// ErrBusy means another build of the same image name is running.
var ErrBusy = errors.New("another build of this image is running")

// Options control Build.
type Options struct {
	Layout store.Layout
	// Name registers the image under this name (default DefaultName).
	Name string
	// Force rebuilds even when the registered image was built from the same inputs.
	Force bool
	// Log receives one line per phase with its timing; nil discards them.
	Log io.Writer
	// Sources is an apt sources file (deb822 or one-line) for mmdebstrap; empty picks the
	// host's Debian bookworm sources if it has them, else mmdebstrap's default mirror.
	Sources string
	// RootSize is the size of the root filesystem in bytes (default 2 GiB); cloud-init
	// grows it to fill the VM's disk on first boot.
	RootSize int64
}
