package store

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked means another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// FileLock is an flock(2) lock on a file; it is released when the process dies.
type FileLock struct{ f *os.File }

// TryLock takes an exclusive lock on path without waiting, or returns ErrLocked.
func TryLock(path string) (*FileLock, error) { return lock(path, unix.LOCK_EX|unix.LOCK_NB) }

// Lock takes an exclusive lock on path, waiting for it.
func Lock(path string) (*FileLock, error) { return lock(path, unix.LOCK_EX) }

// LockShared takes a shared lock on path, waiting for it: many holders at
// once, none while someone holds it exclusively.
func LockShared(path string) (*FileLock, error) { return lock(path, unix.LOCK_SH) }

// LockOpen takes an exclusive lock on an open file without waiting: a
// temporary that fvm is writing holds one, so that whoever cleans up stale
// temporaries (IsStale) leaves it alone. The lock ends with the descriptor.
func LockOpen(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return ErrLocked
		}
		return err
	}
	return nil
}

// IsStale reports whether nobody holds a lock on the file at path (see
// LockOpen): its writer is gone. A file that cannot be opened is not stale.
func IsStale(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return LockOpen(f) == nil
}

func lock(path string, how int) (*FileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return &FileLock{f: f}, nil
}

// Unlock releases the lock.
func (l *FileLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
