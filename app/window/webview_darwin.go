//go:build darwin && cgo

package window

import (
	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/macos/webkit"
	"github.com/progrium/darwinkit/objc"
)

// Opener shows web console pages in NSWindows with a WKWebView, made and
// driven on the main thread, where the tray's NSApplication runs (its run
// loop is systray's: this package never starts one of its own).
func Opener() func(name, url string) error {
	s := NewSet(newWebWindow)
	return s.Show
}

// webWindow is an NSWindow whose content is a WKWebView.
type webWindow struct {
	w    appkit.Window
	view webkit.WebView
}

func onMain(f func()) { dispatch.MainQueue().DispatchAsync(f) }

func newWebWindow(title string, closed func()) View {
	ww := &webWindow{}
	onMain(func() {
		style := appkit.TitledWindowMask | appkit.ClosableWindowMask | appkit.MiniaturizableWindowMask | appkit.ResizableWindowMask
		ww.w = appkit.NewWindowWithContentRectStyleMaskBackingDefer(
			foundation.Rect{Size: foundation.Size{Width: 1024, Height: 700}}, style, appkit.BackingStoreBuffered, false)
		objc.Retain(&ww.w)
		ww.w.SetReleasedWhenClosed(false) // the Set lets go of it
		ww.w.SetTitle(title)
		ww.w.SetContentMinSize(foundation.Size{Width: 480, Height: 320})
		ww.view = webkit.NewWebViewWithFrameConfiguration(foundation.Rect{}, webkit.NewWebViewConfiguration())
		objc.Retain(&ww.view)
		ww.w.SetContentView(ww.view)
		ww.w.Center()
		d := &appkit.WindowDelegate{}
		d.SetWindowWillClose(func(foundation.Notification) {
			// Only the view closes: end its connections; the VM goes on.
			webkit.LoadURL(ww.view, "about:blank")
			closed()
		})
		ww.w.SetDelegate(d)
	})
	return ww
}

func (ww *webWindow) Load(url string) { onMain(func() { webkit.LoadURL(ww.view, url) }) }

func (ww *webWindow) Front() {
	onMain(func() {
		// The menu-bar app is an accessory app: it must activate for its window to come forward.
		activate()
		ww.w.MakeKeyAndOrderFront(nil)
	})
}
