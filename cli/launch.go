package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/fvmhq/fvm/core/proc"
)

// On macOS the menu-bar app hosts VMs (it owns vz VMs' display windows), so
// the CLI starts it rather than `fvm daemon`, but only where it will serve the
// socket the CLI waits on, in a session that can show it. The app's own
// executable is started directly, with this process's environment: `open -a`
// would start it with launchd's instead, without FVM_HOME (another socket) and
// without the PATH that finds QEMU, and `open` fails over SSH.

// appBundles are where `make install` (and a user's drag and drop) put fvm.app.
func appBundles(home string) []string {
	return []string{filepath.Join(home, "Applications", "fvm.app"), "/Applications/fvm.app"}
}

// installedApp returns the installed fvm.app, "" when there is none.
func installedApp(home string, exists func(string) bool) string {
	for _, p := range appBundles(home) {
		if exists(appExecutable(p)) {
			return p
		}
	}
	return ""
}

// appExecutableName is resources.AppExecutable (a test holds them equal),
// spelt out so that the CLI does not embed the bundle's resources.
const appExecutableName = "fvm-app"

func appExecutable(app string) string {
	return filepath.Join(app, "Contents", "MacOS", appExecutableName)
}

// hostChoice is how the CLI brings up a host: the app (App, a bundle path) or
// `fvm daemon` (App ""); Why says why an installed app is not used.
type hostChoice struct {
	App string
	Why string
}

// chooseHost decides between the app and `fvm daemon`: the app on macOS when
// it is installed and a login session can show it; gui is proc.GUISession.
func chooseHost(goos, home string, exists func(string) bool, gui func() (bool, string)) hostChoice {
	if goos != "darwin" {
		return hostChoice{}
	}
	app := installedApp(home, exists)
	if app == "" {
		return hostChoice{}
	}
	if ok, why := gui(); !ok {
		return hostChoice{Why: why + ": fvm daemon hosts the VMs (vz VMs run; their display windows need the app in a login session)"}
	}
	return hostChoice{App: app}
}

// appCommand starts app's executable detached, with env (this process's):
// FVM_HOME in it, made absolute, makes the app serve the same socket as this
// CLI (store.DefaultLayout reads it the same way).
func appCommand(app string, env []string, log *os.File) *exec.Cmd {
	cmd := exec.Command(appExecutable(app))
	cmd.Env = make([]string, 0, len(env))
	for _, kv := range env {
		if h, ok := strings.CutPrefix(kv, "FVM_HOME="); ok && h != "" {
			if abs, err := filepath.Abs(h); err == nil {
				kv = "FVM_HOME=" + abs
			}
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive this terminal
	return cmd
}

// hostToStart is chooseHost for this process.
func hostToStart() hostChoice {
	home, _ := os.UserHomeDir()
	exists := func(p string) bool { st, err := os.Stat(p); return err == nil && !st.IsDir() }
	return chooseHost(runtime.GOOS, home, exists, proc.GUISession)
}
