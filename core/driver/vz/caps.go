package vz

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/vm"
)

// HelperName is the helper executable, in its own bundle inside fvm.app
// (HelperInApp), signed with the virtualization entitlement.
const HelperName = "fvm-vz"

// HelperEnv overrides where the helper is found.
const HelperEnv = "FVM_VZ_HELPER"

// HostCaps are what Virtualization.framework offers on this Mac, as the
// helper reports them (`fvm-vz probe`): only a process that links the
// framework can ask, and the host (fvm daemon) is pure Go.
type HostCaps struct {
	MacOS     string              `json:"macOS"`     // e.g. "14.5"
	Arch      vm.Arch             `json:"arch"`      // the helper's (the Mac's) architecture
	Supported bool                `json:"supported"` // VZVirtualMachine.isSupported
	Limits    Limits              `json:"limits"`
	Rosetta   RosettaAvailability `json:"rosetta"`
	// SaveRestore: this helper can save and restore a VM's state: built with
	// the macOS 14 SDK, on a framework that has the calls (arm64 only).
	SaveRestore bool `json:"saveRestore"`
}

// probedSave is what the helper reports it can do: save and restore are
// compiled into it only with the macOS 14 SDK, whatever macOS runs it.
func (d *Driver) probedSave() bool {
	c, err := d.hostCaps(context.Background())
	return err == nil && c.SaveRestore
}

// probe runs `fvm-vz probe` and reads its answer.
func probe(ctx context.Context, helper string) (HostCaps, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, helper, "probe")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return HostCaps{}, fmt.Errorf("vz helper %s: probe: %s", helper, msg)
	}
	var c HostCaps
	if err := json.Unmarshal(out, &c); err != nil {
		return HostCaps{}, fmt.Errorf("vz helper %s: probe: bad answer %q: %w", helper, out, err)
	}
	return c, nil
}

// macOSAtLeast reports whether version ("14.5", "13") is at least major.
func macOSAtLeast(version string, major int) bool {
	m, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(m)
	return err == nil && n >= major
}
