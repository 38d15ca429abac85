package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// SyncDir fsyncs a directory so that a rename or create in it survives a
// crash. The one helper for it: best effort, as some filesystems refuse it.
func SyncDir(dir string) {
	if d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0); err == nil {
		d.Sync()
		d.Close()
	}
}

// ErrExists means a rename found its target already there.
var ErrExists = errors.New("already exists")

// RenameNoReplace renames from to to, failing with ErrExists (never
// replacing) when to exists: how a VM directory, built under a temporary
// name, appears complete or not at all. The parent of to is fsynced.
func RenameNoReplace(from, to string) error {
	if err := renameNoReplace(from, to); err != nil {
		if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
			return ErrExists
		}
		return err
	}
	SyncDir(filepath.Dir(to))
	return nil
}

// TempPrefix starts the names of everything fvm writes under a temporary name
// before renaming it into place: hidden from listings, and what StaleTemps finds.
const TempPrefix = "."

// IsTemp reports whether a directory entry is a temporary of fvm's.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }
