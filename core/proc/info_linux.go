package proc

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Info returns a live process's executable and arguments from /proc.
func Info(pid int) (exe string, args []string, err error) {
	exe, err = os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "", nil, err // also the case for zombies, which count as gone
	}
	// An upgraded package replaces the binary under a running QEMU.
	exe = strings.TrimSuffix(exe, " (deleted)")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", nil, err
	}
	for _, a := range bytes.Split(bytes.TrimSuffix(b, []byte{0}), []byte{0}) {
		args = append(args, string(a))
	}
	return exe, args, nil
}
