//go:build darwin && cgo

package helper

import (
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"
)

// activity is the helper's App Nap opt-out, held for the process's life.
var activity objc.Object

// noAppNap keeps macOS from napping the helper while its VM runs with no
// window shown (timers coalesced, the VM's network and console slowed). Its
// bundle's Info.plist says NSAppSleepDisabled too; this also covers a helper
// run from outside the bundle ($FVM_VZ_HELPER). Idle system sleep stays
// allowed: a VM is no reason to keep a laptop awake.
func noAppNap() {
	if activity.IsNil() {
		activity = foundation.ProcessInfo_ProcessInfo().BeginActivityWithOptionsReason(
			foundation.ActivityUserInitiatedAllowingIdleSystemSleep, "fvm runs a virtual machine")
		objc.Retain(&activity)
	}
}
