package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
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

// RemoveTree deletes the directory dir so that, to a reader, it goes in one
// step: it is renamed first to a temporary beside it (tombPrefix, the base
// name of dir and a random suffix), then removed. A crash part way through
// removing leaves that temporary, which the owner's start-up cleaning
// recognises by tombPrefix, and never a directory that looks whole with files
// missing (a VM whose spec is there and whose disk is gone). Read-only files
// are made writable first. A dir that does not exist is no error.
func RemoveTree(dir, tombPrefix string) error {
	var rnd [6]byte
	rand.Read(rnd[:])
	tomb := filepath.Join(filepath.Dir(dir), tombPrefix+filepath.Base(dir)+"-"+hex.EncodeToString(rnd[:]))
	if err := os.Rename(dir, tomb); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	filepath.WalkDir(tomb, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			os.Chmod(p, 0o600)
		}
		return nil
	})
	return os.RemoveAll(tomb)
}
