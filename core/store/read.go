package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Every file fvm reads back from its own state directories (specs, runtime
// records, drivers' facts, snapshot and image metadata, keys, known_hosts, pid
// files, instance ids, logs) is opened here, never with a plain os.Open: a
// stray FIFO, device, symlink or giant file in a VM directory (a copied or
// edited directory, a full disk, another local user's trick) must make that VM
// or image "broken", never hang or exhaust the host. So the file is opened
// without following a symlink at its last component (O_NOFOLLOW) and without
// blocking (O_NONBLOCK: opening a FIFO with no writer would wait forever),
// checked with fstat to be a regular file, and read with a limit.

// MaxStateFile bounds what fvm reads back of a record it wrote itself (JSON,
// keys, known_hosts, pid files, ids): far above any it writes (a spec with a
// hundred SSH keys is a few KiB), far below what would hurt the host.
const MaxStateFile = 4 << 20

// ErrNotRegular means a state file is a symlink, FIFO, socket, device or
// directory: never something fvm wrote there.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge means a state file is larger than fvm ever writes it.
var ErrTooLarge = errors.New("larger than fvm writes it")

// OpenRegular opens path for reading without following a symlink and without
// blocking, and checks that it is a regular file. A missing file keeps
// fs.ErrNotExist in its error; anything else fvm never writes wraps
// ErrNotRegular. The caller closes the file.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK) { // EMLINK: FreeBSD's O_NOFOLLOW
			return nil, nil, fmt.Errorf("%q is a symlink: %w", path, ErrNotRegular)
		}
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%q is %s: %w", path, kindOf(st.Mode()), ErrNotRegular)
	}
	return f, st, nil
}

// ReadFileLimited reads the state file at path (OpenRegular) whole; a file
// larger than max bytes is refused with ErrTooLarge, without reading it.
func ReadFileLimited(path string, max int64) ([]byte, error) {
	f, st, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > max {
		return nil, fmt.Errorf("%q has %d bytes: %w (at most %d)", path, st.Size(), ErrTooLarge, max)
	}
	// The limit holds even if the file grows between fstat and the read.
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%q grew past %d bytes: %w", path, max, ErrTooLarge)
	}
	return b, nil
}

// ReadFile reads a small state file (MaxStateFile at most).
func ReadFile(path string) ([]byte, error) { return ReadFileLimited(path, MaxStateFile) }

// ReadTail returns at most the last n bytes of the log at path (opened as
// OpenRegular does), for error messages that quote a program's last words.
func ReadTail(path string, n int64) ([]byte, error) {
	f, st, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	off := max(st.Size()-n, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, n))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	return b, nil
}

// kindOf names a file type for errors.
func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	}
	return "not a regular file (" + m.Type().String() + ")"
}
