package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/driver/vz"
	"github.com/fvmhq/fvm/resources"
)

func TestBundleLayout(t *testing.T) {
	dir := t.TempDir()
	app, cli, helper := filepath.Join(dir, "fvm-app"), filepath.Join(dir, "fvm"), filepath.Join(dir, vz.HelperName)
	os.WriteFile(app, []byte("app"), 0o755)
	os.WriteFile(cli, []byte("cli"), 0o755)
	os.WriteFile(helper, []byte("helper"), 0o755)
	out := filepath.Join(dir, "fvm.app")
	os.MkdirAll(filepath.Join(out, "stale"), 0o755)
	if err := bundle(out, app, cli, helper, "v1.2.3-4-gabc"); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{
		"Contents/Info.plist":                                                  0o644,
		"Contents/PkgInfo":                                                     0o644,
		"Contents/Resources/" + resources.IconFile:                             0o644,
		"Contents/MacOS/" + resources.AppExecutable:                            0o755,
		"Contents/MacOS/fvm":                                                   0o755,
		"Contents/Helpers/fvm-vz.app/Contents/Info.plist":                      0o644,
		"Contents/Helpers/fvm-vz.app/Contents/PkgInfo":                         0o644,
		"Contents/Helpers/fvm-vz.app/Contents/Resources/" + resources.IconFile: 0o644,
		"Contents/Helpers/fvm-vz.app/Contents/MacOS/" + vz.HelperName:          0o755,
	} {
		st, err := os.Stat(filepath.Join(out, path))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v want %v", path, err, st.Mode().Perm(), mode)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "stale")); err == nil {
		t.Error("old bundle content left behind")
	}
	// The helper is in its nested bundle only: no copy beside the CLI that the
	// lookup could take (unsigned, it would fail at the VM's configuration).
	if _, err := os.Stat(filepath.Join(out, "Contents", "MacOS", vz.HelperName)); err == nil {
		t.Error("a helper beside the CLI in Contents/MacOS")
	}
	if got := vz.HelperInApp(out); got != filepath.Join(out, "Contents/Helpers/fvm-vz.app/Contents/MacOS/fvm-vz") {
		t.Errorf("the driver looks for the helper at %s", got)
	}
	if b, _ := os.ReadFile(vz.HelperInApp(out)); string(b) != "helper" {
		t.Errorf("helper binary: %q", b)
	}
	if vz.HelperName != resources.HelperExecutable {
		t.Errorf("the driver's helper name %q differs from the bundle's executable %q", vz.HelperName, resources.HelperExecutable)
	}
	// Both generated Info.plists parse, and say what each bundle is.
	for path, want := range map[string]map[string]any{
		"Contents/Info.plist": {"CFBundleIdentifier": resources.BundleID, "CFBundleExecutable": resources.AppExecutable,
			"NSAppTransportSecurity": map[string]any{"NSAllowsLocalNetworking": true}, "NSAppSleepDisabled": true, "LSUIElement": true},
		"Contents/Helpers/fvm-vz.app/Contents/Info.plist": {"CFBundleIdentifier": resources.HelperBundleID,
			"CFBundleExecutable": vz.HelperName, "NSAppSleepDisabled": true, "LSUIElement": true},
	} {
		data, err := os.ReadFile(filepath.Join(out, path))
		if err != nil {
			t.Fatal(err)
		}
		v, err := resources.DecodePlist(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		m := v.(map[string]any)
		for k, w := range want {
			if !reflect.DeepEqual(m[k], w) {
				t.Errorf("%s: %s = %#v, want %#v", path, k, m[k], w)
			}
		}
		if d, _ := m["NSLocalNetworkUsageDescription"].(string); d == "" {
			t.Errorf("%s: no NSLocalNetworkUsageDescription", path)
		}
	}
	plist, _ := os.ReadFile(filepath.Join(out, "Contents/Info.plist"))
	for _, want := range []string{"<string>fvm-app</string>", "<string>1.2.3</string>", "<string>v1.2.3-4-gabc</string>", "LSUIElement"} {
		if !strings.Contains(string(plist), want) {
			t.Errorf("Info.plist lacks %s", want)
		}
	}
	if err := bundle(filepath.Join(dir, "x"), app, cli, helper, "v1"); err == nil {
		t.Error("bundle path without .app accepted")
	}
	if err := bundle(out, filepath.Join(dir, "missing"), cli, helper, "v1"); err == nil || !strings.Contains(err.Error(), "build it first") {
		t.Errorf("missing binary: %v", err)
	}
}
