package menu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// DefaultConfig is written by Preferences when there is no config file: every
// setting commented out at its default (vm.Defaults), so the file documents
// itself; backends are the host's (api.HostInfo.Backends, preferred first).
func DefaultConfig(backends []string) string {
	d := vm.Defaults
	choices := strings.Join(append([]string{vm.Auto}, backends...), ", ")
	return fmt.Sprintf(`# fvm settings. FVM_<SETTING> environment variables (e.g. FVM_MEMORY=4G)
# and command-line flags override this file. Uncomment a line to change it.

# Defaults for new VMs (sizes: 512M, 2G; a bare number is GiB):
# cpus: %d
# memory: %s
# disk: %s
# user: %s          # login name inside the VM
# accel: %s        # auto, kvm, hvf or tcg
# backend: %s      # %s

# Where to download images from, by distribution:
# images:
#   debian:
#     mirror: https://cloud.debian.org/images/cloud
`, d.CPUs, vm.FormatSize(int64(d.MemoryMiB)<<20), vm.FormatSize(d.DiskBytes), d.User, d.Accel, d.Backend, choices)
}

// EnsureConfig creates the config file with DefaultConfig unless it exists.
func EnsureConfig(path string, backends []string) error {
	if path == "" {
		return errors.New("no config file path")
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("config dir: %w", err)
	}
	if err := store.WriteFileAtomic(path, []byte(DefaultConfig(backends)), 0o644); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}
