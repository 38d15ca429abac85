// Command fvm-vz is the vz helper: one process per vz VM, started detached by
// the fvm host (fvm daemon or fvm.app) with `fvm-vz run --dir VMDIR`. It owns
// the VZVirtualMachine, its user-mode network and its display window, and
// answers the host on the VM's control socket; the VM outlives the host.
// It ships as a nested app, fvm.app/Contents/Helpers/fvm-vz.app (its own
// bundle identifier, an accessory), signed with the virtualization
// entitlement (com.apple.security.virtualization). See core/driver/vz/helper.
package main

import (
	"os"
	"runtime"

	"github.com/fvmhq/fvm/core/driver/vz/helper"
)

// AppKit must run on the main thread: keep main() on it.
func init() { runtime.LockOSThread() }

func main() { os.Exit(helper.Main(os.Args[1:])) }
