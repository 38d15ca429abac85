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
