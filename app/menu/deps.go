package menu

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// Client is the part of the host API the menu uses; *client.Client has it.
type Client interface {
	Host(ctx context.Context) (api.HostInfo, error)
	List(ctx context.Context) ([]api.VM, error)
	Images(ctx context.Context) ([]api.Image, error)
	Create(ctx context.Context, req api.CreateRequest) (api.VM, error)
	Start(ctx context.Context, name string) (api.VM, error)
	Stop(ctx context.Context, name string, req api.StopRequest) (api.VM, error)
	Restart(ctx context.Context, name string, req api.StopRequest) (api.VM, error)
	Remove(ctx context.Context, name string, force bool) error
	// Display shows a VM's screen natively or answers its web console URL.
	Display(ctx context.Context, name string, req api.DisplayRequest) (api.Display, error)
	// CreateSnapshot snapshots a VM (its memory too when it runs); tag "" for the time.
	CreateSnapshot(ctx context.Context, name, tag string) (api.Snapshot, error)
	// Clone makes and starts a new VM from a snapshot of a VM taken now.
	Clone(ctx context.Context, src string, req api.CloneRequest) (api.VM, error)
	// Events streams host events to fn until ctx ends or the stream drops.
	Events(ctx context.Context, fn func(api.Event)) error
	// DialConsole connects to the host's web console for a listener of this
	// machine on 127.0.0.1:localPort (a remote host's console, tunnelled).
	DialConsole(ctx context.Context, localPort int) (net.Conn, error)
}

// Dialogs asks the user things (osascript on macOS, zenity/kdialog on Linux).
// A dialog the user dismisses is a "no", not an error; errors mean no dialog
// could be shown.
type Dialogs interface {
	// Confirm asks a yes/no question; ok labels the yes button.
	Confirm(title, message, ok string) (bool, error)
	// Choose shows up to three buttons and returns the index of the one
	// pressed; buttons[0] is the cancel button (also returned on dismissal).
	Choose(title, message string, buttons []string) (int, error)
	// Pick lets the user pick one of items; ok is false when cancelled.
	Pick(title, message string, items []string) (choice string, ok bool, err error)
	// Entry asks for a line of text; ok is false when cancelled.
	Entry(title, message, initial string) (text string, ok bool, err error)
	// Error shows a failure; Notify a passing note.
	Error(title, message string)
	Notify(title, message string)
}

// Desktop runs the desktop's own programs.
type Desktop interface {
	// OpenTerminal runs a shell command line in a new terminal window.
	OpenTerminal(command string) error
	// CopyText puts text on the clipboard.
	CopyText(text string) error
	// OpenText opens a text file in the user's viewer or editor.
	OpenText(path string) error
	// OpenURL opens a web page in the user's browser.
	OpenURL(url string) error
}

// LoginItem is the Start at Login switch (a LaunchAgent or XDG autostart entry).
type LoginItem interface {
	Enabled() bool
	SetEnabled(on bool) error
}

// Options wire a Menu to the world.
type Options struct {
	Client Client // this machine's host
	// Hosts, when set, adds the Host submenu: this machine and the contexts
	// of `fvm context`, one shown at a time (hosts.go). HostPool is how many
	// it can list (default 8); RemoteTimeout bounds a call to a remote host,
	// which may first need an SSH handshake (default 45s).
	Hosts         Hosts
	HostPool      int
	RemoteTimeout time.Duration

	Dialogs Dialogs
	Desktop Desktop
	Login   LoginItem // nil hides Start at Login

	// ConfigFile is opened by Preferences, created with commented defaults.
	ConfigFile string
	// FvmPath is the fvm CLI that Open Terminal runs (default "fvm").
	FvmPath string
	// Env is prepended to commands shown or run for the user, e.g.
	// FVM_HOME=/x, so they reach this host rather than the default one.
	Env []string
	// OpenWindow shows a VM's web console page (url) in a window of the
	// app's own (macOS: a WKWebView); nil opens it in the browser.
	OpenWindow func(name, url string) error
	// ConsoleInTerminal: Open Console runs `fvm console NAME` in a terminal
	// (macOS) instead of opening the web console's serial tab.
	ConsoleInTerminal bool
	// BeforeDisplay runs before Open Display asks the host for a VM's screen:
	// on macOS 14 it yields activation to the vz helper app, which can then
	// bring its window to the front with the keyboard (cooperative activation).
	BeforeDisplay func()

	// Quit ends the app once the menu has dealt with running VMs.
	Quit func()
	// SelfPID tells "this app hosts the VMs" from "another host does"
	// (default os.Getpid()).
	SelfPID int

	// PoolSize is how many VM submenus exist; more VMs than that are
	// summarised in one line (default 16).
	PoolSize int
	// Settle is how long after (re)subscribing to events the menu lists the
	// VMs again, to catch changes made while the stream was connecting
	// (default 250ms). Backoff bounds the waits between reconnects
	// (default 250ms doubling to 5s).
	Settle                 time.Duration
	BackoffMin, BackoffMax time.Duration
	// StopTimeout is how long Stop and Quit give a guest to power off
	// before the host kills it (default 60s).
	StopTimeout time.Duration

	Log *slog.Logger
}
