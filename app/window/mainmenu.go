package window

// The menu-bar app has no menu bar (LSUIElement), but AppKit still sends key
// equivalents to NSApp's main menu while one of the app's windows has the
// keyboard: without one, Cmd-C, Cmd-V and Cmd-W never reach a console window
// (a WKWebView). mainMenu is that menu, installed by InstallMainMenu (macOS);
// its actions go to the first responder, which is the web view.

// MenuItem is one entry: Action is an Objective-C selector sent to the first
// responder; Key its key equivalent (an upper-case letter adds Shift, as in
// AppKit); "" Title is a separator.
type MenuItem struct {
	Title, Action, Key string
}

// Menu is one top-level menu; the first is the application menu.
type Menu struct {
	Title string
	Items []MenuItem
}

var mainMenu = []Menu{
	{"fvm", []MenuItem{{"Hide fvm", "hide:", "h"}}},
	{"Edit", []MenuItem{
		{"Undo", "undo:", "z"},
		{"Redo", "redo:", "Z"},
		{},
		{"Cut", "cut:", "x"},
		{"Copy", "copy:", "c"},
		{"Paste", "paste:", "v"},
		{"Select All", "selectAll:", "a"},
	}},
	{"Window", []MenuItem{
		{"Minimize", "performMiniaturize:", "m"},
		{"Close", "performClose:", "w"},
	}},
}

// MainMenu is the main menu's layout.
func MainMenu() []Menu { return mainMenu }
