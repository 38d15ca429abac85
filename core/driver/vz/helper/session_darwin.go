//go:build darwin && cgo

package helper

/*
#cgo LDFLAGS: -framework CoreGraphics -framework CoreFoundation
#include <CoreGraphics/CoreGraphics.h>

// fvm_window_server is 1 when this process is in a login session whose window
// server it can reach: CGSessionCopyCurrentDictionary returns NULL outside one
// (a process started over SSH or by launchd), where AppKit would abort.
static int fvm_window_server(void) {
	CFDictionaryRef d = CGSessionCopyCurrentDictionary();
	if (d == NULL) return 0;
	CFRelease(d);
	return 1;
}
*/
import "C"

// loginSession is the helper's windowSession on macOS.
func loginSession() error {
	if C.fvm_window_server() == 0 {
		return ErrNoLoginSession
	}
	return nil
}
