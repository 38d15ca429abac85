//go:build cgo

package helper

import (
	"fmt"

	"github.com/Code-Hex/vz/v3"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// Saving and restoring a VM's state is macOS 14+ on Apple silicon only; vz
// has these calls in its arm64 files, so the amd64 build has stubs.

func canSaveRestore() bool { return macOS14() }

func macOS14() bool {
	var major int
	fmt.Sscanf(vzd.MacOSVersion(), "%d", &major)
	return major >= 14
}

func validateSaveRestore(config *vz.VirtualMachineConfiguration) error {
	if ok, err := config.ValidateSaveRestoreSupport(); !ok || err != nil {
		return fmt.Errorf("save/restore unsupported for this configuration: %w", err)
	}
	return nil
}

func saveState(m *vz.VirtualMachine, path string) error { return m.SaveMachineStateToPath(path) }

func restoreState(m *vz.VirtualMachine, path string) error {
	return m.RestoreMachineStateFromURL(path)
}
