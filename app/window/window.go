// Package window shows web console pages in windows of the app's own (macOS:
// an NSWindow with a WKWebView, webview_darwin.go), one per VM: opening a
// VM's display again brings its window to the front, and closing a window
// only closes the view; the VM goes on. Elsewhere the app opens the browser,
// and Opener returns nil.
package window

import "sync"

// View is one window showing a page.
type View interface {
	// Load shows url in the window.
	Load(url string)
	// Front brings the window to the front and gives it the keyboard.
	Front()
}

// Maker makes a window titled title; it calls closed once the user closed it.
type Maker func(title string, closed func()) View

// Set keeps the open windows by VM name.
type Set struct {
	make Maker
	mu   sync.Mutex
	open map[string]*entry
}

type entry struct {
	v   View
	url string
}

// NewSet returns a set making windows with make.
func NewSet(make Maker) *Set { return &Set{make: make, open: map[string]*entry{}} }

// Show shows url in name's window, making it if there is none, and brings
// it to the front. A window that shows another URL (a new host, a new
// token) loads the new one; the same URL is not loaded again.
func (s *Set) Show(name, url string) error {
	s.mu.Lock()
	e := s.open[name]
	if e == nil {
		e = &entry{}
		s.open[name] = e
		e.v = s.make(name+" · fvm", func() { s.closed(name, e) })
	}
	load := e.url != url
	e.url = url
	s.mu.Unlock()
	if load {
		e.v.Load(url)
	}
	e.v.Front()
	return nil
}

// Open is the number of open windows.
func (s *Set) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

func (s *Set) closed(name string, e *entry) {
	s.mu.Lock()
	if s.open[name] == e {
		delete(s.open, name)
	}
	s.mu.Unlock()
}
