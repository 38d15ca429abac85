// Package desktop runs the desktop's own programs for the menu-bar app and
// the CLI: the browser (`fvm display`), the terminal, the clipboard, a text
// viewer, dialogs (native alerts on macOS, through an Alerter, else
// osascript; zenity or kdialog on Linux) and Start at Login. It shells out
// rather than linking GUI toolkits, so it is plain Go and its command lines
// are tested; it lives below both cli/ and app/.
package desktop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Desktop implements the menu's Desktop and Dialogs.
type Desktop struct {
	goos     string
	getenv   func(string) string
	lookPath func(string) (string, error)
	run      Runner
	log      *slog.Logger
	alerts   Alerter // native dialogs (macOS), when set
}

// Runner runs programs; tests fake it.
type Runner interface {
	// Start launches a program that goes on by itself (a terminal, a viewer).
	Start(name string, args ...string) error
	// Run runs a program to its end, feeding it stdin, and returns its
	// output and exit code; err is set only when it could not run.
	Run(stdin, name string, args ...string) (stdout, stderr string, code int, err error)
}

// New returns the desktop of this OS.
func New(log *slog.Logger) *Desktop {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Desktop{goos: runtime.GOOS, getenv: os.Getenv, lookPath: exec.LookPath, run: execRunner{}, log: log}
}

// find returns the first of the programs found in PATH, or "".
func (d *Desktop) find(names ...string) string {
	for _, n := range names {
		if _, err := d.lookPath(n); err == nil {
			return n
		}
	}
	return ""
}

// OpenTerminal runs a shell command line in a new terminal window: Terminal.app
// on macOS, $TERMINAL or x-terminal-emulator (or a well-known one) elsewhere.
func (d *Desktop) OpenTerminal(command string) error {
	if d.goos == "darwin" {
		return d.run.Start("osascript", osa(`tell application "Terminal"
activate
do script (item 1 of argv)
end tell`, command)...)
	}
	argv, err := d.terminalArgv(command)
	if err != nil {
		return err
	}
	return d.run.Start(argv[0], argv[1:]...)
}

// holdOnFailure keeps a terminal window open when the command fails, so the
// user can read why (Linux terminals close when their command ends).
const holdOnFailure = `; s=$?; if [ "$s" -ne 0 ]; then printf '\n[exited with status %s: press Enter to close] ' "$s"; read -r _; fi`

func (d *Desktop) terminalArgv(command string) ([]string, error) {
	var term []string
	if t := strings.Fields(d.getenv("TERMINAL")); len(t) > 0 {
		term = t
	} else if t := d.find("x-terminal-emulator", "gnome-terminal", "konsole", "xfce4-terminal", "kitty", "alacritty", "foot", "xterm"); t != "" {
		term = []string{t}
	} else {
		return nil, errors.New("no terminal program found: set $TERMINAL or install one (e.g. apt install xterm)")
	}
	// How each terminal takes a command; -e is xterm's convention, which most follow.
	switch base(term[0]) {
	case "gnome-terminal", "kgx", "ptyxis":
		term = append(term, "--")
	case "xfce4-terminal":
		term = append(term, "-x")
	case "foot":
	case "wezterm":
		term = append(term, "start", "--")
	default:
		term = append(term, "-e")
	}
	return append(term, "sh", "-c", command+holdOnFailure), nil
}

func base(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// CopyText puts text on the clipboard: pbcopy, wl-copy, xclip or xsel.
func (d *Desktop) CopyText(text string) error {
	var argv []string
	switch {
	case d.goos == "darwin":
		argv = []string{"pbcopy"}
	case d.getenv("WAYLAND_DISPLAY") != "" && d.find("wl-copy") != "":
		argv = []string{"wl-copy"}
	case d.find("xclip") != "":
		argv = []string{"xclip", "-selection", "clipboard"}
	case d.find("xsel") != "":
		argv = []string{"xsel", "--clipboard", "--input"}
	default:
		return errors.New("no clipboard program found: install xclip, xsel or wl-clipboard")
	}
	_, stderr, code, err := d.run.Run(text, argv[0], argv[1:]...)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d: %s", code, strings.TrimSpace(stderr))
	}
	if err != nil {
		return fmt.Errorf("copy to the clipboard with %s: %w", argv[0], err)
	}
	return nil
}

// OpenText opens a text file in the user's editor or viewer.
func (d *Desktop) OpenText(path string) error {
	if d.goos == "darwin" {
		return d.run.Start("open", "-t", path)
	}
	if d.find("xdg-open") == "" {
		return fmt.Errorf("cannot open %s: xdg-open is missing (apt install xdg-utils)", path)
	}
	return d.run.Start("xdg-open", path)
}

// OpenURL opens a web page in the user's browser: $BROWSER when set (the
// convention xdg-open and sensible-browser follow too: commands separated by
// colons, %s for the URL), else open on macOS and xdg-open elsewhere.
func (d *Desktop) OpenURL(url string) error {
	if b := strings.TrimSpace(strings.Split(d.getenv("BROWSER"), ":")[0]); b != "" {
		argv := strings.Fields(b)
		if strings.Contains(b, "%s") {
			for i := range argv {
				argv[i] = strings.ReplaceAll(argv[i], "%s", url)
			}
		} else {
			argv = append(argv, url)
		}
		return d.run.Start(argv[0], argv[1:]...)
	}
	if d.goos == "darwin" {
		return d.run.Start("open", url)
	}
	if d.find("xdg-open") == "" {
		return errors.New("no browser to open it with: xdg-open is missing (apt install xdg-utils), or set $BROWSER")
	}
	return d.run.Start("xdg-open", url)
}

// execRunner runs real programs.
type execRunner struct{}

func (execRunner) Start(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	// Its own session: a terminal opened from the menu outlives the app.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	go cmd.Wait() // reap it whenever it ends
	return nil
}

func (execRunner) Run(stdin, name string, args ...string) (string, string, int, error) {
	// Dialogs wait for the user, but not forever: a dialog nobody can see
	// (no display) must not hang a click handler for good.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if name == "xclip" || name == "xsel" || name == "wl-copy" {
		// They stay behind to serve the selection: holding their output
		// pipes would make Run wait for that.
		cmd.Stdout, cmd.Stderr = nil, nil
	}
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errb.String(), exit.ExitCode(), nil
	}
	if err != nil {
		return "", "", -1, fmt.Errorf("run %s: %w", name, err)
	}
	return out.String(), errb.String(), 0, nil
}
