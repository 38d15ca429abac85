package vz

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// The helper ships as a nested app bundle of fvm.app, with a bundle
// identifier and Info.plist of its own (an accessory app: its windows must not
// register as fvm.app's), signed with the virtualization entitlement:
//
//	fvm.app/Contents/Helpers/fvm-vz.app/Contents/MacOS/fvm-vz
//
// A copy without that entitlement (an unsigned build, one signed ad hoc
// without --entitlements) would fail only when Virtualization.framework
// validates the VM's configuration, after `--backend auto` chose vz: the lookup
// skips such copies instead.

// HelperBundleName is the helper's nested bundle, in fvm.app/Contents/Helpers.
const HelperBundleName = HelperName + ".app"

// VirtualizationEntitlement is what a process needs to run a VZVirtualMachine.
const VirtualizationEntitlement = "com.apple.security.virtualization"

// HelperInApp is where the helper is inside an app bundle.
func HelperInApp(app string) string {
	return filepath.Join(app, "Contents", "Helpers", HelperBundleName, "Contents", "MacOS", HelperName)
}

// helperSearch is what FindHelper looks at; tests fake each part.
type helperSearch struct {
	env      string // $FVM_VZ_HELPER
	exe      string // this executable, symlinks resolved ("" when unknown)
	home     string
	lookPath func(string) (string, error)
	isExec   func(string) bool
	entitled func(string) error // nil: the helper may run VMs
}

// FindHelper finds a helper that can run VMs: $FVM_VZ_HELPER; else, in order,
// the helper of the fvm.app this executable is in, one beside it (a build's
// bin/), the one in ~/Applications/fvm.app or /Applications/fvm.app, one in
// PATH. A copy without the virtualization entitlement is passed over, and the
// error says so when no other is found.
func FindHelper() (string, error) {
	s := helperSearch{env: os.Getenv(HelperEnv), lookPath: exec.LookPath, isExec: isExecutable, entitled: helperEntitled}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		s.exe = exe
	}
	s.home, _ = os.UserHomeDir()
	return s.find()
}

func (s helperSearch) find() (string, error) {
	if s.env != "" {
		if !s.isExec(s.env) {
			return "", fmt.Errorf("%s=%s is not an executable file", HelperEnv, s.env)
		}
		if err := s.entitled(s.env); err != nil {
			return "", fmt.Errorf("%s=%s: %w: sign it (`make app` does) or unset %s", HelperEnv, s.env, err, HelperEnv)
		}
		return s.env, nil
	}
	var tried []string
	if s.exe != "" {
		dir := filepath.Dir(s.exe)
		if filepath.Base(dir) == "MacOS" && filepath.Ext(filepath.Dir(filepath.Dir(dir))) == ".app" {
			tried = append(tried, HelperInApp(filepath.Dir(filepath.Dir(dir)))) // fvm.app/Contents/MacOS/fvm
		}
		tried = append(tried, filepath.Join(dir, HelperName))
	}
	if s.home != "" {
		tried = append(tried, HelperInApp(filepath.Join(s.home, "Applications", "fvm.app")))
	}
	tried = append(tried, HelperInApp(filepath.Join("/Applications", "fvm.app")))
	if p, err := s.lookPath(HelperName); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			tried = append(tried, abs)
		}
	}
	var skipped []string
	seen := map[string]bool{}
	for _, p := range tried {
		if seen[p] || !s.isExec(p) {
			continue
		}
		seen[p] = true
		if err := s.entitled(p); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", p, err))
			continue
		}
		return p, nil
	}
	if len(skipped) > 0 {
		return "", fmt.Errorf("no usable vz helper: passed over %s: rebuild and sign fvm.app (`make install`), or use --backend qemu", strings.Join(skipped, "; "))
	}
	return "", fmt.Errorf("the vz helper %s was not found (in fvm.app's Contents/Helpers, beside fvm, in ~/Applications or /Applications, or in PATH): install fvm.app (`make install`), set %s, or use --backend qemu", HelperName, HelperEnv)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// entitledCache remembers codesign's answer per file version (path, size, mtime).
var entitledCache sync.Map

// helperEntitled checks the helper's code signature for the virtualization
// entitlement. Only macOS signs code: elsewhere there is nothing to check (and
// no helper can run).
func helperEntitled(p string) error {
	if runtime.GOOS != "darwin" {
		return nil
	}
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", p, st.Size(), st.ModTime().UnixNano())
	if v, ok := entitledCache.Load(key); ok {
		if v == nil {
			return nil
		}
		return v.(error)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = checkEntitlement(ctx, p)
	if err == nil {
		entitledCache.Store(key, nil)
	} else {
		entitledCache.Store(key, err)
	}
	return err
}

// checkEntitlement verifies that the helper is signed with the
// virtualization entitlement, without which VZVirtualMachine refuses to start.
func checkEntitlement(ctx context.Context, helper string) error {
	out, err := exec.CommandContext(ctx, "codesign", "-d", "--entitlements", "-", "--xml", helper).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "not signed") {
			return errors.New("not signed")
		}
		return fmt.Errorf("codesign: %s", msg)
	}
	return parseEntitlements(out)
}

// parseEntitlements reads `codesign -d --entitlements - --xml` output (a
// property list, after a line naming the executable on some versions) and
// checks that the virtualization entitlement is there and true.
func parseEntitlements(out []byte) error {
	s := string(out)
	i := strings.Index(s, "<key>"+VirtualizationEntitlement+"</key>")
	if i < 0 {
		return fmt.Errorf("not signed with the %s entitlement", VirtualizationEntitlement)
	}
	rest := strings.TrimLeft(s[i+len("<key>"+VirtualizationEntitlement+"</key>"):], " \t\r\n")
	if !strings.HasPrefix(rest, "<true/>") {
		return fmt.Errorf("signed with %s set to false", VirtualizationEntitlement)
	}
	return nil
}
