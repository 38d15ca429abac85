package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPlantedErrorsInNewDarwinFiles plants a type error beside each darwin
// file of the first-run fixes, each naming something only that file defines:
// the errors come back as type errors (not "undefined", which would mean the
// file was not checked), so darwin-check covers the menu app's native alerts,
// main menu and activation (app/window), and the helper's login-session
// check, App Nap opt-out and save/restore probe (vz helper).
func TestPlantedErrorsInNewDarwinFiles(t *testing.T) {
	root := repoRoot(t)
	win := func(p string) string { return filepath.Join(root, "app", "window", p) }
	helper := func(p string) string { return filepath.Join(root, "core", "driver", "vz", "helper", p) }
	opt := options{
		Dir:      root,
		Patterns: []string{"./app/window", "./core/driver/vz/helper"},
		Arches:   []string{"arm64", "amd64"},
		Overlay: map[string]string{
			win("planted_darwin.go"):                "package window\n\nvar _ string = nativeAlerts{}\n\nvar _ int = activate\n",
			helper("planted_session_darwin.go"):     "package helper\n\nvar _ string = loginSession\n\nvar _ int = noAppNap\n",
			helper("planted_probe_darwin_arm64.go"): "package helper\n\nvar _ string = canSaveRestore()\n",
		},
	}
	t.Setenv("GOWORK", "off")
	problems, err := run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, p := range problems {
		lines = append(lines, p.String())
	}
	slices.Sort(lines)
	want := []string{
		filepath.Join("app", "window", "planted_darwin.go") + ":3:16: cannot use nativeAlerts{} (value of struct type nativeAlerts) as string value in variable declaration [darwin/arm64,darwin/amd64]",
		filepath.Join("app", "window", "planted_darwin.go") + ":5:13: cannot use activate (value of type func()) as int value in variable declaration [darwin/arm64,darwin/amd64]",
		filepath.Join("core", "driver", "vz", "helper", "planted_probe_darwin_arm64.go") + ":3:16: cannot use canSaveRestore() (value of type bool) as string value in variable declaration [darwin/arm64]",
		filepath.Join("core", "driver", "vz", "helper", "planted_session_darwin.go") + ":3:16: cannot use loginSession (value of type func() error) as string value in variable declaration [darwin/arm64,darwin/amd64]",
		filepath.Join("core", "driver", "vz", "helper", "planted_session_darwin.go") + ":5:13: cannot use noAppNap (value of type func()) as int value in variable declaration [darwin/arm64,darwin/amd64]",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
