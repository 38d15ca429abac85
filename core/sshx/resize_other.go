//go:build !unix

package sshx

// watchResize is a no-op where there is no SIGWINCH; the initial size still applies.
func watchResize(int, func(w, h int)) (stop func()) { return func() {} }
