//go:build !unix

package sshx

// WatchResize is a no-op where there is no SIGWINCH; the initial size still applies.
func WatchResize(int, func(w, h int)) (stop func()) { return func() {} }
