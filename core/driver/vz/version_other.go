//go:build !darwin

package vz

// MacOSVersion is "" off macOS.
func MacOSVersion() string { return "" }
