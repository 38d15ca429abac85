package qemu

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/fvmhq/fvm/core/driver"
)

// hypervisorEntitlement is what macOS requires of a process that uses
// Hypervisor.framework (HVF): QEMU itself must be signed with it.
const hypervisorEntitlement = "com.apple.security.hypervisor"

// hasHypervisorEntitlement reads `codesign -d --entitlements - --xml` output.
func hasHypervisorEntitlement(codesignOut string) bool {
	i := strings.Index(codesignOut, "<key>"+hypervisorEntitlement+"</key>")
	if i < 0 {
		return false
	}
	rest := strings.TrimSpace(codesignOut[i+len("<key>"+hypervisorEntitlement+"</key>"):])
	return strings.HasPrefix(rest, "<true/>")
}

// signCheck tells whether qemuPath may use HVF (macOS only), and how to fix it.
func signCheck(ctx context.Context, qemuPath string) driver.Check {
	c := driver.Check{Name: "qemu signing"}
	out, err := exec.CommandContext(ctx, "codesign", "-d", "--entitlements", "-", "--xml", qemuPath).CombinedOutput()
	switch {
	case err != nil && strings.Contains(string(out), "not signed"):
		c.Detail = qemuPath + " is not signed, so it cannot use Hypervisor.framework (HVF)"
	case err != nil:
		c.Detail = fmt.Sprintf("codesign %s: %v: %s", qemuPath, err, strings.TrimSpace(string(out)))
	case !hasHypervisorEntitlement(string(out)):
		c.Detail = qemuPath + " lacks the " + hypervisorEntitlement + " entitlement, so it cannot use HVF"
	default:
		c.OK, c.Detail = true, qemuPath+" has "+hypervisorEntitlement
		return c
	}
	c.Fix = "codesign --force --sign - --entitlements resources/qemu-entitlements.plist " + qemuPath + " (or reinstall: brew reinstall qemu)"
	return c
}
