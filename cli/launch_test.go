package cli

import "testing"

func TestInstalledApp(t *testing.T) {
	have := map[string]bool{"/Users/me/Applications/fvm.app/Contents/MacOS/fvm-app": true}
	exists := func(p string) bool { return have[p] }
	if got := installedApp("darwin", "/Users/me", exists); got != "/Users/me/Applications/fvm.app" {
		t.Errorf("darwin with the app: %q", got)
	}
	if got := installedApp("linux", "/Users/me", exists); got != "" {
		t.Errorf("linux: %q, want no app (Linux starts fvm daemon)", got)
	}
	if got := installedApp("darwin", "/Users/other", exists); got != "" {
		t.Errorf("darwin without the app: %q", got)
	}
}
