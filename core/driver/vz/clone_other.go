//go:build !darwin && !linux

package vz

// cloneFile: no clone call here; CloneDisk copies.
func cloneFile(src, dst string) (bool, error) { return false, errNoClone }
