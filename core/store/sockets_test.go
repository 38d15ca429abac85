package store

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// longDir is a VM directory as deep as one under
// /Users/a-long-user-name/Library/Application Support/fvm/vms/ with a 32-character name.
func longDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), "vms", strings.Repeat("n", 32))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSocketPathShortStaysInTheVMDir(t *testing.T) {
	SetSocketAliasDir(filepath.Join(t.TempDir(), "vm"))
	defer SetSocketAliasDir("")
	dir := t.TempDir()
	if got := SocketPath(dir, "qmp.sock"); got != filepath.Join(dir, "qmp.sock") {
		t.Errorf("short path moved: %s", got)
	}
}

// TestSocketPathLongBindsThroughAlias binds a real socket at the alias path:
// the socket appears in the VM's directory, and a client reaches it.
func TestSocketPathLongBindsThroughAlias(t *testing.T) {
	root := filepath.Join(t.TempDir(), "run", SocketAliasDirName)
	SetSocketAliasDir(root)
	defer SetSocketAliasDir("")
	dir := longDir(t)
	long := filepath.Join(dir, "virtiofs-0.sock")
	if len(long) <= MaxSocketPath {
		t.Fatalf("test dir too short: %d bytes", len(long))
	}
	p := SocketPath(dir, "virtiofs-0.sock")
	if len(p) > MaxSocketPath || !strings.HasPrefix(p, root+"/") {
		t.Fatalf("alias path %s (%d bytes) is not a short path under %s", p, len(p), root)
	}
	if err := CheckSocketPath(p); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatalf("bind through the alias: %v", err)
	}
	defer ln.Close()
	if st, err := os.Stat(long); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("the socket is not in the VM's directory: %v", err)
	}
	c, err := net.Dial("unix", SocketPath(dir, "virtiofs-0.sock")) // the same path again, as a client computes it
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if st, _ := os.Stat(root); st.Mode().Perm() != 0o700 {
		t.Errorf("alias dir mode %v, want 0700", st.Mode().Perm())
	}

	// A deleted VM's alias goes when another one is made; a stale link is replaced.
	os.RemoveAll(dir)
	other := longDir(t)
	q := SocketPath(other, "qmp.sock")
	if _, err := os.Lstat(filepath.Dir(p)); !os.IsNotExist(err) {
		t.Errorf("the alias of a removed VM dir stays: %v", err)
	}
	if target, err := os.Readlink(filepath.Dir(q)); err != nil || target != other {
		t.Errorf("alias %s → %q, %v; want %s", filepath.Dir(q), target, err, other)
	}
}

func TestCheckSocketPathSaysTheCause(t *testing.T) {
	SetSocketAliasDir("")
	long := filepath.Join("/", strings.Repeat("x", 120), "qmp.sock")
	if got := SocketPath(filepath.Dir(long), "qmp.sock"); got != long {
		t.Errorf("without an alias dir: %s", got)
	}
	err := CheckSocketPath(long)
	if err == nil || !strings.Contains(err.Error(), "104 on macOS") || !strings.Contains(err.Error(), "FVM_HOME") || !strings.Contains(err.Error(), "too deep") {
		t.Errorf("error: %v", err)
	}
	// A run dir so deep that even the alias is too long: said so.
	SetSocketAliasDir(filepath.Join("/", strings.Repeat("r", 100)))
	defer SetSocketAliasDir("")
	p := SocketPath(filepath.Dir(long), "qmp.sock")
	if p != long {
		t.Errorf("alias over the limit used: %s", p)
	}
	if err := CheckSocketPath(p); err == nil || !strings.Contains(err.Error(), "even through a short alias") {
		t.Errorf("error: %v", err)
	}
}
