package main

import (
	"os"
	"path/filepath"
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
		"Contents/Info.plist":                       0o644,
		"Contents/PkgInfo":                          0o644,
		"Contents/Resources/" + resources.IconFile:  0o644,
		"Contents/MacOS/" + resources.AppExecutable: 0o755,
		"Contents/MacOS/fvm":                        0o755,
		"Contents/MacOS/" + vz.HelperName:           0o755,
	} {
		st, err := os.Stat(filepath.Join(out, path))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v want %v", path, err, st.Mode().Perm(), mode)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "stale")); err == nil {
		t.Error("old bundle content left behind")
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
