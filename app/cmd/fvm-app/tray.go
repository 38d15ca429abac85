//go:build cgo

package main

import (
	"sync"

	"github.com/getlantern/systray"

	"github.com/fvmhq/fvm/app/menu"
)

// sysTray adapts systray to menu.Tray. It is thin on purpose: the menu's
// logic lives in app/menu, tested without a display.
type sysTray struct{}

func (sysTray) AddItem(title, tooltip string) menu.Item {
	return watch(systray.AddMenuItem(title, tooltip))
}

func (sysTray) AddCheckbox(title, tooltip string, checked bool) menu.Item {
	return watch(systray.AddMenuItemCheckbox(title, tooltip, checked))
}

func (sysTray) AddSeparator()         { systray.AddSeparator() }
func (sysTray) SetTitle(title string) { systray.SetTitle(title) }
func (sysTray) SetTooltip(tip string) { systray.SetTooltip(tip) }

type trayItem struct {
	mi *systray.MenuItem

	mu      sync.Mutex
	hidden  bool
	onClick func()
}

// watch turns the item's click channel into calls of its handler.
func watch(mi *systray.MenuItem) *trayItem {
	it := &trayItem{mi: mi}
	go func() {
		for range mi.ClickedCh {
			it.mu.Lock()
			fn := it.onClick
			it.mu.Unlock()
			if fn != nil {
				go fn()
			}
		}
	}()
	return it
}

// update applies a change; on Linux systray shows an item again whenever it
// changes, so a hidden item is hidden once more.
func (it *trayItem) update(change func()) {
	it.mu.Lock()
	defer it.mu.Unlock()
	change()
	if it.hidden {
		it.mi.Hide()
	}
}

func (it *trayItem) AddSubItem(title, tooltip string) menu.Item {
	return watch(it.mi.AddSubMenuItem(title, tooltip))
}

func (it *trayItem) SetTitle(title string) { it.update(func() { it.mi.SetTitle(title) }) }
func (it *trayItem) SetTooltip(tip string) { it.update(func() { it.mi.SetTooltip(tip) }) }
func (it *trayItem) Enable()               { it.update(it.mi.Enable) }
func (it *trayItem) Disable()              { it.update(it.mi.Disable) }

func (it *trayItem) SetChecked(on bool) {
	if on {
		it.update(it.mi.Check)
	} else {
		it.update(it.mi.Uncheck)
	}
}

func (it *trayItem) Hide() {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.hidden = true
	it.mi.Hide()
}

func (it *trayItem) Show() {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.hidden = false
	it.mi.Show()
}

func (it *trayItem) OnClick(fn func()) {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.onClick = fn
}
