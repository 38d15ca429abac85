// Command mkbundle assembles fvm.app from built binaries: Contents/Info.plist
// rendered from resources/, the icon, in Contents/MacOS the app binary and the
// fvm CLI, and in Contents/Helpers/fvm-vz.app the vz helper (one process per
// vz VM) as an app bundle of its own: an accessory with its own identifier,
// so that its display windows do not register as fvm.app's. The helper is
// nowhere else: build-app.sh signs it, inside out, with the virtualization
// entitlement. It runs on any OS, so the layout is tested on Linux.
//
//	go run ./scripts/mkbundle -app bin/fvm-app -cli bin/fvm -helper bin/fvm-vz -version v1.2.3 -out bin/fvm.app
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fvmhq/fvm/core/driver/vz"
	"github.com/fvmhq/fvm/resources"
)

func main() {
	app := flag.String("app", "bin/fvm-app", "the menu-bar app binary (built for darwin)")
	cli := flag.String("cli", "bin/fvm", "the fvm CLI binary (built for darwin)")
	helper := flag.String("helper", "bin/"+vz.HelperName, "the vz helper binary (built for darwin, with cgo)")
	version := flag.String("version", "dev", "fvm version for Info.plist")
	out := flag.String("out", "bin/fvm.app", "bundle to create (replaced if it exists)")
	flag.Parse()
	if err := bundle(*out, *app, *cli, *helper, *version); err != nil {
		fmt.Fprintln(os.Stderr, "mkbundle:", err)
		os.Exit(1)
	}
}

// bundle writes the bundle at out, replacing any earlier one.
func bundle(out, app, cli, helper, version string) error {
	if filepath.Ext(out) != ".app" {
		return fmt.Errorf("bundle path %s must end in .app", out)
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	contents := filepath.Join(out, "Contents")
	plist, err := resources.InfoPlist(version)
	if err != nil {
		return err
	}
	helperPlist, err := resources.HelperInfoPlist(version)
	if err != nil {
		return err
	}
	helperContents := filepath.Join(contents, "Helpers", vz.HelperBundleName, "Contents")
	icon, err := resources.File(resources.IconFile)
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data func() ([]byte, error)
		mode os.FileMode
	}{
		{filepath.Join(contents, "Info.plist"), constant(plist), 0o644},
		{filepath.Join(contents, "PkgInfo"), constant([]byte("APPL????")), 0o644},
		{filepath.Join(contents, "Resources", resources.IconFile), constant(icon), 0o644},
		{filepath.Join(contents, "MacOS", resources.AppExecutable), read(app), 0o755},
		{filepath.Join(contents, "MacOS", "fvm"), read(cli), 0o755},
		// Found from the CLI and the app by the vz driver (vz.HelperInApp).
		{filepath.Join(helperContents, "Info.plist"), constant(helperPlist), 0o644},
		{filepath.Join(helperContents, "PkgInfo"), constant([]byte("APPL????")), 0o644},
		{filepath.Join(helperContents, "Resources", resources.IconFile), constant(icon), 0o644},
		{filepath.Join(helperContents, "MacOS", resources.HelperExecutable), read(helper), 0o755},
	}
	for _, f := range files {
		data, err := f.data()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f.path, data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func constant(b []byte) func() ([]byte, error) { return func() ([]byte, error) { return b, nil } }

func read(path string) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("binary %s: %w (build it first: see scripts/build-app.sh)", path, err)
		}
		return b, nil
	}
}
