package vz

import "golang.org/x/sys/unix"

// MacOSVersion is this Mac's product version ("14.5"), "" when unknown.
func MacOSVersion() string {
	v, err := unix.Sysctl("kern.osproductversion")
	if err != nil {
		return ""
	}
	return v
}
