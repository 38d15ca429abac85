//go:build darwin && cgo

package window

import (
	"log/slog"
	"net/url"

	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/macos/appkit"
	"github.com/progrium/darwinkit/macos/foundation"
	"github.com/progrium/darwinkit/macos/webkit"
	"github.com/progrium/darwinkit/objc"
)

// Opener shows web console pages in NSWindows with a WKWebView, made and
// driven on the main thread, where the tray's NSApplication runs (its run
// loop is systray's: this package never starts one of its own). Each page's
// load, or why it failed (App Transport Security, a host gone), goes to log.
func Opener(log *slog.Logger) func(name, url string) error {
	s := NewSet(func(title string, closed func()) View { return newWebWindow(title, closed, log) })
	return s.Show
}

// webWindow is an NSWindow whose content is a WKWebView.
type webWindow struct {
	w    appkit.Window
	view webkit.WebView
	nav  *webkit.NavigationDelegate
}

// pageOf is the view's page without its query (the console's token).
func pageOf(v webkit.WebView) string {
	u, err := url.Parse(v.URL().AbsoluteString())
	if err != nil {
		return ""
	}
	u.RawQuery = ""
	return u.String()
}

func onMain(f func()) { dispatch.MainQueue().DispatchAsync(f) }

func newWebWindow(title string, closed func(), log *slog.Logger) View {
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
		nav := &webkit.NavigationDelegate{}
		nav.SetWebViewDidFinishNavigation(func(v webkit.WebView, _ webkit.Navigation) {
			log.Info("console page loaded", "window", title, "url", pageOf(v))
		})
		failed := func(v webkit.WebView, _ webkit.Navigation, err foundation.Error) {
			log.Warn("console page failed to load", "window", title, "url", pageOf(v), "err", err.LocalizedDescription())
		}
		nav.SetWebViewDidFailNavigationWithError(failed)
		nav.SetWebViewDidFailProvisionalNavigationWithError(failed)
		ww.nav = nav // the view holds its delegate weakly
		ww.view.SetNavigationDelegate(nav)
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
