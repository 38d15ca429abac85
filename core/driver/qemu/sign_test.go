package qemu

import "testing"

func TestHasHypervisorEntitlement(t *testing.T) {
	signed := `<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "https://www.apple.com/DTDs/PropertyList-1.0.dtd"><plist version="1.0"><dict><key>com.apple.security.hypervisor</key><true/></dict></plist>`
	for out, want := range map[string]bool{
		signed: true,
		`<dict><key>com.apple.security.hypervisor</key> <false/></dict>`:        false,
		`<dict><key>com.apple.security.network.client</key><true/></dict>`:      false,
		"Executable=/opt/homebrew/bin/qemu-system-aarch64\n":                    false,
		`<dict><key>com.apple.security.hypervisor</key>` + "\n\t<true/></dict>": true,
	} {
		if got := hasHypervisorEntitlement(out); got != want {
			t.Errorf("hasHypervisorEntitlement(%q) = %v, want %v", out, got, want)
		}
	}
}
