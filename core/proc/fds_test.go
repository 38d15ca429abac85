package proc

import (
	"os"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestInheritedFDs(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Simulate a descriptor inherited from the caller: a dup without close-on-exec.
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(inheritedFDs(), fd) {
		t.Fatalf("dup'd fd %d not seen as inherited", fd)
	}
	if slices.Contains(inheritedFDs(), int(f.Fd())) {
		t.Fatal("Go's own fd seen as inherited")
	}
	NoInheritFDs()
	if slices.Contains(inheritedFDs(), fd) {
		t.Fatal("fd still inheritable after NoInheritFDs")
	}
	fd2, _ := syscall.Dup(int(f.Fd()))
	CloseInheritedFDs()
	if _, err := unix.FcntlInt(uintptr(fd2), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("fd %d not closed: %v", fd2, err)
	}
}
