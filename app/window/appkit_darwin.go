//go:build darwin && cgo

package window

import (
	"strings"

	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/objc"

	"github.com/fvmhq/fvm/core/desktop"
)

// activate brings the app forward: macOS 14's cooperative activate where
// there is one (activateIgnoringOtherApps: is ignored there), else the old call.
func activate() {
	app := appkit.Application_SharedApplication()
	if sel := objc.Sel("activate"); app.RespondsToSelector(sel) {
		objc.Call[objc.Void](app, sel)
	} else {
		app.ActivateIgnoringOtherApps(true)
	}
}

// InstallMainMenu makes MainMenu NSApp's main menu, so that the console
// windows get Cmd-C, Cmd-V, Cmd-W... (an LSUIElement app shows no menu bar,
// but its main menu still answers key equivalents).
func InstallMainMenu() {
	onMain(func() {
		bar := appkit.NewMenuWithTitle("")
		for _, m := range mainMenu {
			top := appkit.NewMenuItemWithTitleActionKeyEquivalent(m.Title, objc.Selector{}, "")
			sub := appkit.NewMenuWithTitle(m.Title)
			for _, it := range m.Items {
				if it.Title == "" {
					sub.AddItem(appkit.MenuItem_SeparatorItem())
					continue
				}
				key := strings.ToLower(it.Key)
				mi := appkit.NewMenuItemWithTitleActionKeyEquivalent(it.Title, objc.Sel(it.Action), key)
				mods := appkit.EventModifierFlagCommand
				if key != it.Key {
					mods |= appkit.EventModifierFlagShift
				}
				mi.SetKeyEquivalentModifierMask(mods)
				sub.AddItem(mi)
			}
			top.SetSubmenu(sub)
			bar.AddItem(top)
		}
		objc.Retain(&bar)
		appkit.Application_SharedApplication().SetMainMenu(bar)
	})
}

// YieldActivation lets the app with bundle identifier id (the vz helper)
// take the keyboard when it next activates itself: since macOS 14 an app
// that is not active may not activate itself unless the active one yields to
// it. The app activates itself first (a click on its menu is the user's
// intent), then yields. Before macOS 14 it does nothing.
func YieldActivation(id string) {
	onMain(func() {
		app := appkit.Application_SharedApplication()
		sel := objc.Sel("yieldActivationToApplicationWithBundleIdentifier:")
		if !app.RespondsToSelector(sel) {
			return
		}
		activate()
		objc.Call[objc.Void](app, sel, id)
	})
}

// Alerts shows the app's dialogs as NSAlerts, in the app's own process and in
// front of other windows.
func Alerts() desktop.Alerter { return nativeAlerts{} }

type nativeAlerts struct{}

// Show runs the alert modally on the main thread and waits for the user.
func (nativeAlerts) Show(a desktop.Alert) (desktop.AlertResult, error) {
	done := make(chan desktop.AlertResult, 1)
	onMain(func() {
		var r desktop.AlertResult
		defer func() { done <- r }()
		al := appkit.NewAlert()
		al.SetMessageText(a.Title)
		al.SetInformativeText(a.Message)
		if a.Critical {
			al.SetAlertStyle(appkit.AlertStyleCritical)
		}
		for i, b := range a.Buttons {
			btn := al.AddButtonWithTitle(b)
			if i > 0 && i == len(a.Buttons)-1 {
				btn.SetKeyEquivalent("\x1b") // Escape: the cancel button
			}
		}
		var field appkit.TextField
		var popup appkit.PopUpButton
		switch {
		case a.Input != nil:
			field = appkit.TextField_TextFieldWithString(*a.Input)
			field.SetFrameSize(foundation.Size{Width: 320, Height: 24})
			al.SetAccessoryView(field)
			al.Window().SetInitialFirstResponder(field)
		case len(a.Items) > 0:
			popup = appkit.NewPopUpButtonWithFramePullsDown(foundation.Rect{Size: foundation.Size{Width: 320, Height: 26}}, false)
			popup.AddItemsWithTitles(a.Items)
			al.SetAccessoryView(popup)
		}
		activate() // an accessory app's alert would open behind the front app's windows
		resp := al.RunModal()
		r.Button = int(resp - appkit.AlertFirstButtonReturn)
		if a.Input != nil {
			r.Text = field.StringValue()
		}
		if len(a.Items) > 0 {
			r.Item = popup.IndexOfSelectedItem()
		}
	})
	return <-done, nil
}
