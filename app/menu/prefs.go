package menu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fvmhq/fvm/core/store"
)

// DefaultConfig is written by Preferences when there is no config file: every
// setting commented out at its default, so the file documents itself.
const DefaultConfig = `# fvm settings. FVM_<SETTING> environment variables (e.g. FVM_MEMORY=4G)
# and command-line flags override this file. Uncomment a line to change it.

# Defaults for new VMs:
# cpus: 2
# memory: 2G
# disk: 20G
# user: fvm          # login name inside the VM
# accel: auto        # auto, kvm, hvf or tcg

# Where to download images from, by distribution:
# images:
#   debian:
#     mirror: https://cloud.debian.org/images/cloud
`

// EnsureConfig creates the config file with DefaultConfig unless it exists.
func EnsureConfig(path string) error {
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
	if err := store.WriteFileAtomic(path, []byte(DefaultConfig), 0o644); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}
