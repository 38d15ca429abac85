package desktop

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errNoNotifier means no notification program is installed.
var errNoNotifier = errors.New("no notification program found: install libnotify-bin (notify-send)")

// errNoDialog means no dialog program is installed.
var errNoDialog = errors.New("no dialog program found: install zenity (apt install zenity) or kdialog")

// osa makes osascript arguments running script as a run handler over args,
// so no text is ever spliced into AppleScript source.
func osa(script string, args ...string) []string {
	argv := []string{"-e", "on run argv"}
	for _, l := range strings.Split(script, "\n") {
		argv = append(argv, "-e", l)
	}
	return append(append(argv, "-e", "end run"), args...)
}

// osaCancelled reports osascript's "User canceled. (-128)".
func osaCancelled(code int, stderr string) bool {
	return code != 0 && strings.Contains(stderr, "-128")
}

// tool is the Linux dialog program: zenity, else kdialog.
func (d *Desktop) tool() (string, error) {
	if t := d.find("zenity", "kdialog"); t != "" {
		return t, nil
	}
	return "", errNoDialog
}

func failed(tool string, code int, stderr string) error {
	return fmt.Errorf("%s failed (exit status %d): %s", tool, code, strings.TrimSpace(stderr))
}

// Confirm asks a yes/no question; ok labels the yes button.
func (d *Desktop) Confirm(title, message, ok string) (bool, error) {
	i, err := d.Choose(title, message, []string{"Cancel", ok})
	return i == 1, err
}

// Choose shows two or three buttons and returns the index of the one
// pressed; buttons[0] cancels and is what dismissing the dialog returns.
func (d *Desktop) Choose(title, message string, buttons []string) (int, error) {
	if len(buttons) < 2 || len(buttons) > 3 {
		return 0, fmt.Errorf("dialog: %d buttons, want 2 or 3", len(buttons))
	}
	last := len(buttons) - 1
	if d.goos == "darwin" && d.alerts != nil {
		return d.nativeChoose(title, message, buttons)
	}
	if d.goos == "darwin" {
		out, stderr, code, err := d.run.Run("", "osascript", osa(`set b to items 3 thru -1 of argv
set r to display dialog (item 2 of argv) with title (item 1 of argv) buttons b default button (count of b) cancel button 1 with icon caution
return button returned of r`, append([]string{title, message}, buttons...)...)...)
		switch {
		case err != nil:
			return 0, err
		case osaCancelled(code, stderr):
			return 0, nil
		case code != 0:
			return 0, failed("osascript", code, stderr)
		}
		return indexOf(buttons, out), nil
	}
	t, err := d.tool()
	if err != nil {
		return 0, err
	}
	if t == "kdialog" {
		args := []string{"--title", title, "--yes-label", buttons[last], "--no-label", buttons[last-1]}
		if len(buttons) == 3 {
			args = append(args, "--cancel-label", buttons[0], "--yesnocancel", message)
		} else {
			args = append(args, "--yesno", message)
		}
		_, stderr, code, err := d.run.Run("", t, args...)
		switch {
		case err != nil:
			return 0, err
		case code == 0:
			return last, nil
		case code == 1:
			return last - 1, nil
		case code == 2:
			return 0, nil
		}
		return 0, failed(t, code, stderr)
	}
	args := []string{"--question", "--no-markup", "--title", title, "--text", message,
		"--ok-label", buttons[last], "--cancel-label", buttons[0]}
	if len(buttons) == 3 {
		args = append(args, "--extra-button", buttons[1])
	}
	out, stderr, code, err := d.run.Run("", t, args...)
	switch {
	case err != nil:
		return 0, err
	case code == 0:
		return last, nil
	case code == 1: // cancel, dismissal or the extra button, which prints its label
		return max(indexOf(buttons, out), 0), nil
	}
	return 0, failed(t, code, stderr)
}

// indexOf finds a button by the label a dialog printed, -1 if none.
func indexOf(buttons []string, out string) int {
	out = strings.TrimRight(out, "\r\n")
	for i, b := range buttons {
		if b == out && out != "" {
			return i
		}
	}
	return -1
}

// Pick lets the user pick one of items.
func (d *Desktop) Pick(title, message string, items []string) (string, bool, error) {
	if len(items) == 0 {
		return "", false, errors.New("dialog: nothing to pick from")
	}
	if d.goos == "darwin" && d.alerts != nil {
		return d.nativePick(title, message, items)
	}
	var tool string
	var args []string
	if d.goos == "darwin" {
		tool = "osascript"
		args = osa(`set r to choose from list (items 3 thru -1 of argv) with title (item 1 of argv) with prompt (item 2 of argv)
if r is false then return ""
return item 1 of r`, append([]string{title, message}, items...)...)
	} else {
		t, err := d.tool()
		if err != nil {
			return "", false, err
		}
		tool = t
		if t == "kdialog" {
			args = []string{"--title", title, "--menu", message}
			for i, it := range items {
				args = append(args, strconv.Itoa(i), it)
			}
		} else {
			args = append([]string{"--list", "--title", title, "--text", message, "--column", "Choice", "--hide-header"}, items...)
		}
	}
	out, stderr, code, err := d.run.Run("", tool, args...)
	switch {
	case err != nil:
		return "", false, err
	case code == 1 || osaCancelled(code, stderr):
		return "", false, nil
	case code != 0:
		return "", false, failed(tool, code, stderr)
	}
	out = strings.TrimRight(out, "\r\n")
	if tool == "kdialog" {
		i, err := strconv.Atoi(out)
		if err != nil || i < 0 || i >= len(items) {
			return "", false, fmt.Errorf("kdialog: unexpected answer %q", out)
		}
		return items[i], true, nil
	}
	// zenity prints the row; a row wider than its column may come back
	// with a separator appended on some versions.
	out = strings.TrimSuffix(out, "|")
	for _, it := range items {
		if it == out {
			return it, true, nil
		}
	}
	return "", false, nil // OK pressed with nothing selected
}

// Entry asks for a line of text.
func (d *Desktop) Entry(title, message, initial string) (string, bool, error) {
	if d.goos == "darwin" && d.alerts != nil {
		return d.nativeEntry(title, message, initial)
	}
	var tool string
	var args []string
	if d.goos == "darwin" {
		tool = "osascript"
		args = osa(`set r to display dialog (item 2 of argv) with title (item 1 of argv) default answer (item 3 of argv)
return text returned of r`, title, message, initial)
	} else {
		t, err := d.tool()
		if err != nil {
			return "", false, err
		}
		tool = t
		if t == "kdialog" {
			args = []string{"--title", title, "--inputbox", message, initial}
		} else {
			args = []string{"--entry", "--title", title, "--text", message, "--entry-text", initial}
		}
	}
	out, stderr, code, err := d.run.Run("", tool, args...)
	switch {
	case err != nil:
		return "", false, err
	case code == 1 || osaCancelled(code, stderr):
		return "", false, nil
	case code != 0:
		return "", false, failed(tool, code, stderr)
	}
	return strings.TrimRight(out, "\r\n"), true, nil
}

// Error shows a failure without waiting for the user to dismiss it; with no
// dialog program it is only logged (callers log failures themselves).
func (d *Desktop) Error(title, message string) {
	if d.goos == "darwin" && d.alerts != nil {
		d.nativeError(title, message)
		return
	}
	var err error
	switch {
	case d.goos == "darwin":
		err = d.run.Start("osascript", osa(`display alert (item 1 of argv) message (item 2 of argv) as critical`, title, message)...)
	case d.find("zenity") != "":
		err = d.run.Start("zenity", "--error", "--no-markup", "--title", title, "--text", message)
	case d.find("kdialog") != "":
		err = d.run.Start("kdialog", "--title", title, "--error", message)
	default:
		err = errNoDialog
	}
	if err != nil {
		d.log.Warn("cannot show error dialog", "title", title, "err", err)
	}
}

// Notify shows a passing note (a desktop notification), if the desktop can.
func (d *Desktop) Notify(title, message string) {
	err := errNoNotifier
	switch {
	case d.goos == "darwin":
		err = d.run.Start("osascript", osa(`display notification (item 2 of argv) with title (item 1 of argv)`, title, message)...)
	case d.find("notify-send") != "":
		err = d.run.Start("notify-send", "--app-name=fvm", title, message)
	case d.find("kdialog") != "":
		err = d.run.Start("kdialog", "--title", title, "--passivepopup", message, "5")
	}
	if err != nil {
		d.log.Info("cannot show notification", "title", title, "message", message, "err", err)
	}
}
