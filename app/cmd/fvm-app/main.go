//go:build cgo

// Command fvm-app is fvm's menu-bar app: it hosts the VMs in-process (the same
// socket and API as `fvm daemon`) and shows them in a tray menu. If another
// host already runs, the menu drives that host's VMs and the app takes over
// hosting when it stops. SIGTERM or SIGINT quits, leaving VMs running.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/getlantern/systray"

	"github.com/fvmhq/fvm/app/host"
	"github.com/fvmhq/fvm/app/menu"
	"github.com/fvmhq/fvm/app/window"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/desktop"
	corehost "github.com/fvmhq/fvm/core/host"
	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/resources"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() { os.Exit(run()) }

func run() int {
	if runtime.GOOS == "linux" && os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		fmt.Fprintln(os.Stderr, "fvm-app: no graphical session (DISPLAY and WAYLAND_DISPLAY are unset): use `fvm daemon` for a host without a tray")
		return 1
	}
	proc.CloseInheritedFDs() // the host may outlive whatever started it
	layout := store.DefaultLayout()
	logw, closeLog := openLog(layout)
	defer closeLog()
	log := slog.New(slog.NewTextHandler(logw, nil))

	// The same host as `fvm daemon` (cli/daemoncmd), in this process.
	d := corehost.New(layout, Version, logw)
	desk := desktop.New(log)
	desk.SetAlerter(window.Alerts()) // macOS: NSAlerts in front, not osascript's dialogs behind other windows

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hostDone := make(chan struct{})
	go func() {
		defer close(hostDone)
		host.Run(ctx, d, host.Options{
			Log: log,
			OtherHost: func(error) {
				desk.Notify("fvm", "Another fvm host is already running: this menu controls its VMs, and takes over when it stops.")
			},
			Failed: func(err error) {
				desk.Error("fvm: cannot host VMs", err.Error())
			},
		})
	}()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		log.Info("quitting on signal: VMs keep running for the next host", "signal", s.String())
		systray.Quit()
	}()

	systray.Run(func() {
		window.InstallMainMenu() // macOS: Cmd-C, Cmd-V, Cmd-W in console windows
		systray.SetTemplateIcon(resources.TrayIcon(), resources.TrayIconLight())
		systray.SetTooltip("fvm")
		var login menu.LoginItem
		if l, err := desktop.NewLogin(); err == nil {
			login = l
		} else {
			log.Warn("start at login unavailable", "err", err)
		}
		m := menu.New(sysTray{}, menu.Options{
			Client:     client.New(layout.SocketPath()),
			Hosts:      host.Contexts{Layout: layout, Version: Version}, // this machine and `fvm context`'s hosts
			Dialogs:    desk,
			Desktop:    desk,
			Login:      login,
			ConfigFile: layout.ConfigFile(),
			FvmPath:    fvmPath(),
			Env:        hostEnv(),
			// macOS: web consoles in windows of the app's own, the serial
			// console in Terminal; Linux: both in the browser.
			OpenWindow:        window.Opener(log),
			ConsoleInTerminal: runtime.GOOS == "darwin",
			// macOS 14: the vz helper may take the keyboard for its window.
			BeforeDisplay: func() { window.YieldActivation(resources.HelperBundleID) },
			Quit:          systray.Quit,
			Log:           log,
		})
		go m.Run(ctx)
	}, func() {
		// Runs when the tray's loop ends. Stop serving here, not after Run:
		// on macOS the process exits as soon as this returns.
		cancel()
		select {
		case <-hostDone:
		case <-time.After(10 * time.Second):
			log.Warn("host did not stop serving in 10s; exiting anyway")
		}
	})
	log.Info("fvm-app exited")
	return 0
}

// openLog logs to stderr and, like the detached `fvm daemon`, to daemon.log
// beside the socket, which is where users are told to look.
func openLog(layout store.Layout) (io.Writer, func()) {
	if err := layout.EnsureRunDir(); err != nil {
		return os.Stderr, func() {}
	}
	f, err := os.OpenFile(layout.DaemonLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return os.Stderr, func() {}
	}
	return io.MultiWriter(os.Stderr, f), func() { f.Close() }
}

// fvmPath finds the fvm CLI for terminal commands: beside this binary (in
// fvm.app/Contents/MacOS, or bin/), else in PATH.
func fvmPath() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "fvm")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return "fvm"
}

// hostEnv is what commands run for the user need to reach this host.
func hostEnv() []string {
	if h := os.Getenv("FVM_HOME"); h != "" {
		if abs, err := filepath.Abs(h); err == nil {
			h = abs
		}
		return []string{"FVM_HOME=" + h}
	}
	return nil
}
