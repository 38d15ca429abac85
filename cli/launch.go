package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// appBundles are where `make install` (and a user's drag and drop) put fvm.app.
func appBundles(home string) []string {
	return []string{filepath.Join(home, "Applications", "fvm.app"), "/Applications/fvm.app"}
}

// installedApp returns the menu-bar app that should host VMs, if installed: on
// macOS the app hosts vz VMs, so the CLI starts it rather than a bare daemon.
func installedApp(goos, home string, exists func(string) bool) string {
	if goos != "darwin" {
		return ""
	}
	for _, p := range appBundles(home) {
		if exists(filepath.Join(p, "Contents", "MacOS", "fvm-app")) {
			return p
		}
	}
	return ""
}

// launchApp starts the installed app in the background (`open -g`), or reports false.
func launchApp() (bool, error) {
	home, _ := os.UserHomeDir()
	app := installedApp(runtime.GOOS, home, func(p string) bool { _, err := os.Stat(p); return err == nil })
	if app == "" {
		return false, nil
	}
	return true, exec.Command("open", "-g", "-a", app).Run()
}
