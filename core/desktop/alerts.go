package desktop

import (
	"errors"
	"fmt"
)

// On macOS the app's dialogs are native alerts (NSAlert, in the app's own
// process): dialogs that osascript shows belong to another process and open
// behind the windows in front. The alert itself is AppKit (app/window); what a
// dialog means (which button cancels, which is the default, what comes back)
// is here, tested on every OS.

// Alert is one native dialog.
type Alert struct {
	Title, Message string
	// Buttons right to left: the first is the default (Return), the last the
	// cancel one (Escape), as NSAlert lays out the buttons it is given in order.
	Buttons  []string
	Critical bool
	// Input adds a text field holding *Input; Items a pop-up menu of them.
	Input *string
	Items []string
}

// AlertResult is what the user did: the button pressed (an index into
// Alert.Buttons), the text typed, the item picked (an index into Items).
type AlertResult struct {
	Button int
	Text   string
	Item   int
}

// Alerter shows native alerts; Show waits for the user.
type Alerter interface {
	Show(a Alert) (AlertResult, error)
}

// SetAlerter makes the dialogs native alerts (macOS); nil keeps osascript.
func (d *Desktop) SetAlerter(a Alerter) { d.alerts = a }

// alertButtons lays out the menu's buttons (buttons[0] cancels, the last is
// the default) in NSAlert's order, and index maps a pressed one back.
func alertButtons(buttons []string) (ordered []string, index func(pressed int) int) {
	last := len(buttons) - 1
	ordered = make([]string, len(buttons))
	for i, b := range buttons {
		ordered[last-i] = b
	}
	return ordered, func(pressed int) int {
		if pressed < 0 || pressed > last {
			return 0 // dismissed: cancel
		}
		return last - pressed
	}
}

func (d *Desktop) nativeChoose(title, message string, buttons []string) (int, error) {
	ordered, index := alertButtons(buttons)
	r, err := d.alerts.Show(Alert{Title: title, Message: message, Buttons: ordered, Critical: true})
	if err != nil {
		return 0, err
	}
	return index(r.Button), nil
}

func (d *Desktop) nativePick(title, message string, items []string) (string, bool, error) {
	if len(items) == 0 {
		return "", false, errors.New("dialog: nothing to pick from")
	}
	r, err := d.alerts.Show(Alert{Title: title, Message: message, Buttons: []string{"OK", "Cancel"}, Items: items})
	if err != nil {
		return "", false, err
	}
	if r.Button != 0 {
		return "", false, nil
	}
	if r.Item < 0 || r.Item >= len(items) {
		return "", false, fmt.Errorf("dialog: item %d picked of %d", r.Item, len(items))
	}
	return items[r.Item], true, nil
}

func (d *Desktop) nativeEntry(title, message, initial string) (string, bool, error) {
	text := initial
	r, err := d.alerts.Show(Alert{Title: title, Message: message, Buttons: []string{"OK", "Cancel"}, Input: &text})
	if err != nil || r.Button != 0 {
		return "", false, err
	}
	return r.Text, true, nil
}

func (d *Desktop) nativeError(title, message string) {
	go func() { // Error does not wait for the user
		if _, err := d.alerts.Show(Alert{Title: title, Message: message, Buttons: []string{"OK"}, Critical: true}); err != nil {
			d.log.Warn("cannot show error dialog", "title", title, "err", err)
		}
	}()
}
