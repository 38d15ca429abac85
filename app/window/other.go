//go:build !darwin || !cgo

package window

import (
	"log/slog"

	"github.com/fvmhq/fvm/core/desktop"
)

// Opener is nil here: the app opens web console pages in the browser.
func Opener(*slog.Logger) func(name, url string) error { return nil }

// InstallMainMenu does nothing here: Linux trays have no application menu.
func InstallMainMenu() {}

// YieldActivation does nothing here: macOS's cooperative activation only.
func YieldActivation(string) {}

// Alerts is nil here: dialogs are zenity's or kdialog's.
func Alerts() desktop.Alerter { return nil }
