package desktop

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/resources"
)

// Login is Start at Login: a LaunchAgent in ~/Library/LaunchAgents on macOS,
// an XDG autostart entry in ~/.config/autostart elsewhere. The file's
// presence is the setting.
type Login struct {
	goos    string
	path    string
	program string
}

// NewLogin returns Start at Login for this user and this app binary.
func NewLogin() (*Login, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start at login: own path: %w", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("start at login: %w", err)
	}
	return LoginFor(runtime.GOOS, home, os.Getenv("XDG_CONFIG_HOME"), exe), nil
}

// LoginFor is Start at Login on goos for a home directory, an optional
// XDG_CONFIG_HOME and the absolute path of the app binary.
func LoginFor(goos, home, xdgConfigHome, program string) *Login {
	var path string
	switch {
	case goos == "darwin":
		path = filepath.Join(home, "Library", "LaunchAgents", resources.LaunchAgentFile)
	case xdgConfigHome != "":
		path = filepath.Join(xdgConfigHome, "autostart", resources.AutostartFile)
	default:
		path = filepath.Join(home, ".config", "autostart", resources.AutostartFile)
	}
	return &Login{goos: goos, path: path, program: program}
}

// Path is the file that turns Start at Login on.
func (l *Login) Path() string { return l.path }

// Enabled reports whether the app starts at login.
func (l *Login) Enabled() bool {
	_, err := os.Stat(l.path)
	return err == nil
}

// SetEnabled writes or removes the login entry. Turning it off does not stop
// this app, and turning it on does not start a second one: it acts at the
// next login.
func (l *Login) SetEnabled(on bool) error {
	if !on {
		if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("start at login: remove %s: %w", l.path, err)
		}
		return nil
	}
	var data []byte
	var err error
	if l.goos == "darwin" {
		data, err = resources.LaunchAgentPlist(l.program)
	} else {
		data, err = resources.AutostartDesktop(l.program)
	}
	if err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	if err := store.WriteFileAtomic(l.path, data, 0o644); err != nil {
		return fmt.Errorf("start at login: write %s: %w", l.path, err)
	}
	return nil
}
