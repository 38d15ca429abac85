package vz

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/fvmhq/fvm/core/store"
)

// cloneFile makes dst a reflink of src (FICLONE: btrfs, XFS, bcachefs), the
// Linux counterpart of APFS's clonefile; elsewhere (ext4, tmpfs) errNoClone.
// The vz driver runs on macOS only; this lets its disk code run in tests here.
func cloneFile(src, dst string) (bool, error) {
	in, _, err := store.OpenRegular(src)
	if err != nil {
		return false, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	err = unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return true, nil
	}
	os.Remove(dst)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
		return false, errNoClone
	}
	return false, err
}
