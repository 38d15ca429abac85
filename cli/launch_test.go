package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/resources"
)

func TestChooseHost(t *testing.T) {
	have := map[string]bool{"/Users/me/Applications/fvm.app/Contents/MacOS/fvm-app": true}
	exists := func(p string) bool { return have[p] }
	gui := func() (bool, string) { return true, "" }
	noGUI := func() (bool, string) {
		return false, `no login session's window server here (over SSH: launchd session "Background", not Aqua)`
	}

	if c := chooseHost("darwin", "/Users/me", exists, gui); c.App != "/Users/me/Applications/fvm.app" || c.Why != "" {
		t.Errorf("darwin, app installed, login session: %+v, want the app", c)
	}
	// Over SSH (or from launchd) the app cannot show itself: fvm daemon, with why.
	if c := chooseHost("darwin", "/Users/me", exists, noGUI); c.App != "" || !strings.Contains(c.Why, "over SSH") || !strings.Contains(c.Why, "fvm daemon") {
		t.Errorf("darwin over SSH: %+v, want fvm daemon and why", c)
	}
	if c := chooseHost("darwin", "/Users/other", exists, gui); c.App != "" || c.Why != "" {
		t.Errorf("darwin without the app: %+v, want fvm daemon silently", c)
	}
	if c := chooseHost("linux", "/Users/me", exists, gui); c.App != "" {
		t.Errorf("linux: %+v, want fvm daemon (the tray app is started by the desktop)", c)
	}
	if c := chooseHost("darwin", "/nohome", func(p string) bool { return p == "/Applications/fvm.app/Contents/MacOS/fvm-app" }, gui); c.App != "/Applications/fvm.app" {
		t.Errorf("app in /Applications: %+v", c)
	}
	if appExecutableName != resources.AppExecutable {
		t.Errorf("the CLI starts %s, the bundle's executable is %s", appExecutableName, resources.AppExecutable)
	}
}

// TestAppCommandServesTheCLIsSocket: the app is started with this process's
// environment, FVM_HOME made absolute: it serves the socket the CLI waits on.
func TestAppCommandServesTheCLIsSocket(t *testing.T) {
	t.Chdir(t.TempDir())
	log, _ := os.Create(filepath.Join(t.TempDir(), "daemon.log"))
	defer log.Close()
	cmd := appCommand("/Applications/fvm.app", []string{"PATH=/opt/homebrew/bin:/usr/bin", "FVM_HOME=rel/home"}, log)
	if cmd.Path != "/Applications/fvm.app/Contents/MacOS/fvm-app" {
		t.Errorf("starts %s", cmd.Path)
	}
	wd, _ := os.Getwd()
	if !slices.Contains(cmd.Env, "FVM_HOME="+filepath.Join(wd, "rel/home")) || !slices.Contains(cmd.Env, "PATH=/opt/homebrew/bin:/usr/bin") {
		t.Errorf("env %q: want FVM_HOME absolute and PATH kept (QEMU from Homebrew)", cmd.Env)
	}
	if cmd.SysProcAttr == nil || !cmd.SysProcAttr.Setsid {
		t.Error("the app is not in a session of its own")
	}
}
