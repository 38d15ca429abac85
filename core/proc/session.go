package proc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// GUISession reports whether processes started from here can show windows: on
// macOS, whether this process is in a graphical login session (launchd's
// "Aqua" session; a shell over SSH is in a "Background" one, a launchd job in
// "System" or "Background", and neither reaches the window server); on Linux,
// whether DISPLAY or WAYLAND_DISPLAY names one. why says what is missing.
func GUISession() (ok bool, why string) {
	return guiSession(runtime.GOOS, os.Getenv, launchdSession)
}

// launchdSession is `launchctl managername`: the type of launchd session this
// process is in (Aqua, Background, LoginWindow, StandardIO, System).
func launchdSession() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "launchctl", "managername").Output()
	return strings.TrimSpace(string(out)), err
}

func guiSession(goos string, getenv func(string) string, session func() (string, error)) (bool, string) {
	if goos != "darwin" {
		if getenv("DISPLAY") != "" || getenv("WAYLAND_DISPLAY") != "" {
			return true, ""
		}
		return false, "no graphical session (DISPLAY and WAYLAND_DISPLAY are unset)"
	}
	name, err := session()
	if err != nil {
		return false, fmt.Sprintf("cannot tell the launchd session (launchctl managername: %v)", err)
	}
	if name == "Aqua" {
		return true, ""
	}
	how := "started by launchd"
	if getenv("SSH_CONNECTION") != "" || getenv("SSH_TTY") != "" {
		how = "over SSH"
	}
	return false, fmt.Sprintf("no login session's window server here (%s: launchd session %q, not Aqua)", how, name)
}
