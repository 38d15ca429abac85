//go:build cgo

package helper

/*
#include <Availability.h>

// fvm_sdk_save_restore is 1 when this binary was compiled against the macOS 14
// SDK or later. Code-Hex/vz compiles its save and restore calls only then
// (#ifdef INCLUDE_TARGET_OSX_14); built with an older SDK they raise at run
// time, whatever macOS runs the binary.
static int fvm_sdk_save_restore(void) {
#if defined(__MAC_OS_X_VERSION_MAX_ALLOWED) && __MAC_OS_X_VERSION_MAX_ALLOWED >= 140000
	return 1;
#else
	return 0;
#endif
}
*/
import "C"

import (
	"fmt"

	"github.com/Code-Hex/vz/v3"
	"github.com/progrium/darwinkit/objc"
)

// Saving and restoring a VM's state is macOS 14+ on Apple silicon only; vz
// has these calls in its arm64 files, so the amd64 build has stubs.

// canSaveRestore is the capability this binary really has, not what the OS
// version suggests: compiled with the macOS 14 SDK (vz's calls are in it),
// and running on a framework whose VZVirtualMachine can save its state.
func canSaveRestore() bool {
	return C.fvm_sdk_save_restore() == 1 &&
		objc.GetClass("VZVirtualMachine").RespondsToSelector(objc.Sel("saveMachineStateToURL:completionHandler:"))
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
