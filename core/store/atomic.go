package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to a temp file beside path, fsyncs it and renames it
// into place, so readers see the old content or the new, never a torn file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteAtomic lets write fill a temp file beside path, then fsyncs it and renames
// it into place with mode perm. On any error the temp file is removed and path is
// left as it was.
func WriteAtomic(path string, perm os.FileMode, write func(f *os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	LockOpen(f) // a cleaner of stale temporaries leaves it alone (IsStale)
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	SyncDir(dir) // persist the rename
	return nil
}

// WriteJSON saves v as indented JSON through WriteFileAtomic, private to the
// user (0600) like everything in fvm's state.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'), PrivateFile)
}

// ReadJSON loads a JSON file fvm wrote into v, through ReadFile (a regular
// file, not followed through a symlink, never blocking, MaxStateFile at
// most), naming the file in errors.
func ReadJSON(path string, v any) error {
	b, err := ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%q: %w", path, err)
	}
	return nil
}
