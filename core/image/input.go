package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Input is a user's disk or ISO file, opened once: it is inspected, hashed and
// copied from this one descriptor, so the bytes checked are the bytes used even
// if the path is swapped meanwhile.
type Input struct {
	*os.File
	Path string // as resolved: a named symlink is followed once, explicitly
	Size int64
	Info Info
}

// OpenInput opens the file at p for import. A symlink at p is resolved first;
// the resolved path is then opened with O_NOFOLLOW (a symlink swapped in after
// the resolution is refused) and O_NONBLOCK (a FIFO cannot block the host), and
// must be a regular file. Its format is detected from the open descriptor.
func OpenInput(p string) (*Input, error) {
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", p, err)
	}
	f, err := os.OpenFile(resolved, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("open %q: it was replaced by a symlink while being opened: try again", p)
	}
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %q: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%q is not a regular file (%s): give the path of a disk image file", p, fileKind(st.Mode()))
	}
	info, err := InspectFile(f, resolved, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Input{File: f, Path: resolved, Size: st.Size(), Info: info}, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}
