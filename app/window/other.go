//go:build !darwin || !cgo

package window

// Opener is nil here: the app opens web console pages in the browser.
func Opener() func(name, url string) error { return nil }
