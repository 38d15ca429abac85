// Package menu is the menu-bar app's menu: it renders the host's VMs into a
// tray menu, turns clicks into API calls and stays live through the host's
// event stream. It is plain Go: the tray, the API client, dialogs and desktop
// actions are interfaces, so it builds and is tested on any OS without cgo.
package menu

// Tray is the system tray the menu draws into (systray in the app, a fake in
// tests). Tray menus cannot remove items, so the menu hides and retitles.
type Tray interface {
	AddItem(title, tooltip string) Item
	AddCheckbox(title, tooltip string, checked bool) Item
	AddSeparator()
	SetTitle(title string)
	SetTooltip(tooltip string)
}

// Item is one menu entry; an item that gets sub-items becomes a submenu.
// OnClick handlers run on their own goroutine and may block.
type Item interface {
	AddSubItem(title, tooltip string) Item
	SetTitle(title string)
	SetTooltip(tooltip string)
	SetChecked(checked bool)
	Enable()
	Disable()
	Hide()
	Show()
	OnClick(fn func())
}

// view caches what an item shows, so a refresh only calls the tray for real
// changes: each change is a D-Bus layout update on Linux, and re-showing a
// hidden item there is a visible flicker.
type view struct {
	it                      Item
	title, tooltip          string
	enabled, visible, check bool
}

func newView(it Item, title string) *view {
	return &view{it: it, title: title, enabled: true, visible: true}
}

func (v *view) set(title, tooltip string, enabled bool) {
	if title != v.title {
		v.it.SetTitle(title)
		v.title = title
	}
	if tooltip != v.tooltip {
		v.it.SetTooltip(tooltip)
		v.tooltip = tooltip
	}
	v.enable(enabled)
}

func (v *view) enable(on bool) {
	if on == v.enabled {
		return
	}
	if on {
		v.it.Enable()
	} else {
		v.it.Disable()
	}
	v.enabled = on
}

func (v *view) show(on bool) {
	if on == v.visible {
		return
	}
	if on {
		v.it.Show()
	} else {
		v.it.Hide()
	}
	v.visible = on
}
