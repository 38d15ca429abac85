package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
)

// Unix socket addresses hold at most 104 bytes on macOS and 108 on Linux,
// the final NUL included. A VM's sockets live in its directory, which on a
// Mac is ~/Library/Application Support/fvm/vms/NAME/: with a long user name
// and a long VM name that is over the limit. Such a VM binds and dials its
// sockets through a short alias of its directory in the host's run dir
// (RUNDIR/vm/ID → the VM's directory, a symbolic link): the sockets stay in
// the VM's directory, only their addresses are short.

// MaxSocketPath is the longest socket path that binds on every host fvm runs on.
const MaxSocketPath = 103

// SocketAliasDirName is the run dir's subdirectory of aliases.
const SocketAliasDirName = "vm"

var aliasRoot atomic.Pointer[string]

// SetSocketAliasDir sets where aliases of long instance directories are made
// (the host's RUNDIR/vm): the host calls it once with its layout. Without it
// socket paths are always in the instance directory.
func SetSocketAliasDir(dir string) {
	if dir == "" {
		aliasRoot.Store(nil)
		return
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	aliasRoot.Store(&dir)
}

// SocketAliasDir is the directory given to SetSocketAliasDir, "" for none.
func SocketAliasDir() string {
	if p := aliasRoot.Load(); p != nil {
		return *p
	}
	return ""
}

// SocketPath is the address to bind or dial for the socket name of the
// instance in dir: dir/name when that fits, else the same file through the
// directory's short alias (made here when missing). When even that does not
// fit, the long path comes back, and CheckSocketPath says why.
func SocketPath(dir, name string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	p := filepath.Join(dir, name)
	root := SocketAliasDir()
	if len(p) <= MaxSocketPath || root == "" {
		return p
	}
	link := filepath.Join(root, aliasName(dir))
	if len(link)+1+len(name) > MaxSocketPath {
		return p
	}
	if err := ensureAlias(link, dir); err != nil {
		return p
	}
	return filepath.Join(link, name)
}

// SocketPath is store.SocketPath for the instance's directory.
func (i *Instance) SocketPath(name string) string { return SocketPath(i.Dir, name) }

// CheckSocketPath returns nil when p fits a socket address, else an error
// that names the real cause and the fix.
func CheckSocketPath(p string) error {
	if len(p) <= MaxSocketPath {
		return nil
	}
	why := "its directory is too deep"
	if root := SocketAliasDir(); root != "" {
		why = fmt.Sprintf("even through a short alias in %s it would not fit", root)
	}
	return fmt.Errorf("socket path %s is %d bytes, over the %d bytes a Unix socket address holds (104 on macOS, 108 on Linux), and %s: set FVM_HOME to a shorter directory (e.g. ~/.fvm)",
		p, len(p), MaxSocketPath, why)
}

// aliasName names a directory's alias: 12 hex digits of its path's hash.
func aliasName(dir string) string {
	h := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(h[:6])
}

// ensureAlias makes link a symbolic link to dir, replacing a stale one, and
// removes aliases whose directory is gone (deleted VMs).
func ensureAlias(link, dir string) error {
	if t, err := os.Readlink(link); err == nil && t == dir {
		return nil
	}
	root := filepath.Dir(link)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	pruneAliases(root)
	if st, err := os.Lstat(link); err == nil {
		if st.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("socket alias %s is not a symbolic link: remove it", link)
		}
		os.Remove(link)
	}
	err := os.Symlink(dir, link)
	if errors.Is(err, fs.ErrExist) { // another process made it at the same moment
		if t, rerr := os.Readlink(link); rerr == nil && t == dir {
			return nil
		}
	}
	return err
}

// pruneAliases removes the links in root whose directory no longer exists.
func pruneAliases(root string) {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			os.Remove(p)
		}
	}
}
