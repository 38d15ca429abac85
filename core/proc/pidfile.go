package proc

import (
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fvmhq/fvm/core/store"
)

// ReadPIDFile reads the pid a process wrote into path; 0 when there is none
// (or something else than a small regular file is there: store.ReadFile).
func ReadPIDFile(path string) int {
	b, err := store.ReadFileLimited(path, 64)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// SamePath reports whether a and b name the same file, through symlinks.
func SamePath(a, b string) bool {
	if a == b {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}
