//go:build cgo

package helper

import (
	"errors"

	"github.com/Code-Hex/vz/v3"
)

// errNoSave: Virtualization.framework saves VM state on Apple silicon only.
var errNoSave = errors.New("saving a VM's state needs macOS 14+ on Apple silicon")

func canSaveRestore() bool { return false }

func validateSaveRestore(*vz.VirtualMachineConfiguration) error { return errNoSave }

func saveState(*vz.VirtualMachine, string) error { return errNoSave }

func restoreState(*vz.VirtualMachine, string) error { return errNoSave }
