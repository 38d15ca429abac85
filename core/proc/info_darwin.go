package proc

import (
	"bytes"
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// Info returns a live process's executable and arguments from the
// kern.procargs2 sysctl: argc (int32), the exec path, NUL padding, then argv.
func Info(pid int) (exe string, args []string, err error) {
	b, err := unix.SysctlRaw("kern.procargs2", pid)
	if err != nil {
		return "", nil, err
	}
	if len(b) < 4 {
		return "", nil, errors.New("kern.procargs2: short answer")
	}
	argc := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, errors.New("kern.procargs2: no exec path")
	}
	exe, b = string(b[:i]), bytes.TrimLeft(b[i:], "\x00")
	for len(args) < argc && len(b) > 0 {
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			j = len(b)
		}
		args = append(args, string(b[:j]))
		b = b[min(j+1, len(b)):]
	}
	return exe, args, nil
}
