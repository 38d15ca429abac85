package store

import (
	"io/fs"
	"os"
	"path/filepath"
)

// fvm's state is private to the user who runs it: disks hold whatever the
// guests wrote, keys log into them, logs show their consoles. Directories are
// 0700 and files 0600; base disks and frozen snapshot files, which must never
// change, 0400. A cache shared between users would have to be an explicit
// setting, never a default.
const (
	PrivateDir   fs.FileMode = 0o700
	PrivateFile  fs.FileMode = 0o600
	ReadOnlyFile fs.FileMode = 0o400 // cached bases, frozen warm snapshots
)

// MkdirPrivate makes dir (and missing parents) 0700, and fixes dir's mode if
// it exists with a looser one.
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, PrivateDir); err != nil {
		return err
	}
	return tighten(dir)
}

// tighten removes group and other permissions from path (not through a symlink).
func tighten(path string) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&fs.ModeSymlink != 0 || st.Mode().Perm()&0o077 == 0 {
		return err
	}
	return os.Chmod(path, st.Mode().Perm()&^0o077)
}

// FixModes makes fvm's existing state private, as an fvm from before this rule
// may have left it (cache/bases 0755 with world-readable 0444 bases, 0644
// specs): every state directory, each VM and warm snapshot directory and the
// files in them lose group and other permissions. The host runs it at start;
// it returns the paths it changed. Build trees (root filesystems being made)
// are left as they are inside their private directory.
func (l Layout) FixModes() (fixed []string) {
	fix := func(p string) {
		if st, err := os.Lstat(p); err == nil && st.Mode()&fs.ModeSymlink == 0 && st.Mode().Perm()&0o077 != 0 {
			if tighten(p) == nil {
				fixed = append(fixed, p)
			}
		}
	}
	fixFiles := func(dir string) { // the directory and the files right in it
		fix(dir)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !e.IsDir() {
				fix(filepath.Join(dir, e.Name()))
			}
		}
	}
	fixTree := func(dir string) { // ... and one level of directories below (VMs, snapshots)
		fixFiles(dir)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() {
				fixFiles(filepath.Join(dir, e.Name()))
			}
		}
	}
	for _, d := range []string{l.ConfigDir, l.DataDir, l.CacheDir, l.RunDir, l.BuildDir()} {
		fix(d)
	}
	for _, d := range []string{l.ImagesDir(), l.BasesDir(), l.DownloadsDir(), l.SSHDir(), l.RunDir} {
		fixFiles(d)
	}
	fixTree(l.VMsDir())
	fixTree(l.WarmDir())
	return fixed
}
