package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// Client verbs reach VMs only through the API: the packages behind them must not
// import driver or host code. Only cli/daemoncmd (wired in by main) may.
func TestClientVerbsImportNoDriverCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/fvmhq/fvm/cli").CombinedOutput()
	if err != nil {
		t.Skipf("go list unavailable: %v: %s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned too little: %q", out)
	}
	for _, dep := range deps {
		for _, banned := range []string{"github.com/fvmhq/fvm/core/driver", "github.com/fvmhq/fvm/core/daemon", "github.com/fvmhq/fvm/cli/daemoncmd"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("cli imports %s; client verbs must use core/api/client only", dep)
			}
		}
	}
}
