//go:build !linux && !darwin

package store

import (
	"os"
	"syscall"
)

// renameNoReplace without an atomic primitive: a check, then the rename.
func renameNoReplace(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return syscall.EEXIST
	}
	return os.Rename(from, to)
}

// exchange has no atomic primitive here: refused.
func exchange(a, b string) error { return syscall.ENOTSUP }
