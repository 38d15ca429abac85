package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fvmhq/fvm/core/api"
)

// Blank VMs (`fvm create --name X`, no image, no ISO) and the installer
// attached to them later (`fvm start X --iso FILE`): see core/daemon/blank.go.

// blankHint completes the no-image error of `create` with the blank form.
func blankHint(verb string) string {
	if verb != "create" {
		return ""
	}
	return ", or `fvm create --name NAME` for a blank VM to install from an ISO later"
}

// blankNote tells what a blank VM does after `create`.
func (a *app) blankNote(v api.VM) {
	if v.Spec.Blank {
		a.phase("%s has an empty disk: `fvm start %s --iso FILE` boots an installer on it", v.Spec.Name, v.Spec.Name)
	}
}

// startedBlank handles `fvm start` of a blank VM: its firmware finds nothing
// to boot, so there is no SSH to wait for; it says where to look and what to do.
func (a *app) startedBlank(v api.VM) bool {
	if !v.Spec.Blank {
		return false
	}
	n := v.Spec.Name
	a.phase("%s has nothing to boot: its firmware says so on its screen (`fvm display %s`) and serial console (`fvm logs %s`); `fvm start %s --iso FILE` boots an installer", n, n, n, n)
	return true
}

// startISO checks `start --iso FILE`: one VM, an existing file, made absolute
// (the host runs on this machine; a remote host's path is given as it is there).
func startISO(iso string, names []string) (string, error) {
	if iso == "" {
		return "", nil
	}
	if len(names) != 1 {
		return "", fmt.Errorf("--iso attaches an installer to one VM: give one name, not %d", len(names))
	}
	abs, err := filepath.Abs(iso)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(abs); err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("--iso %s: not a file here: give the installer's .iso file", iso)
	}
	return abs, nil
}
