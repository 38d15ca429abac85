package main

import (
	"context"
	"go/types"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fvmhq/fvm/core/driver/vz/helper"
)

// repoRoot is fvm's module root, two levels up from scripts/darwincheck.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestPlantedVZErrorFails checks fvm's real vz packages (driver and helper,
// which calls Code-Hex/vz and darwinkit) with type errors planted through an
// overlay: each is reported for exactly the architectures that compile its
// file, and nothing else is, so the real files are clean in the same run.
// The same run's types of Code-Hex/vz are the field-layout check's
// (checkVZFieldLayout): one check of this large graph costs seconds.
func TestPlantedVZErrorFails(t *testing.T) {
	root := repoRoot(t)
	rel := func(p string) string { return filepath.Join(root, "core", "driver", "vz", p) }
	opt := options{
		Dir:      root,
		Patterns: []string{"./core/driver/vz/...", "./app/cmd/fvm-vz"},
		Arches:   []string{"arm64", "amd64"},
		Overlay: map[string]string{
			// A state is no string (Code-Hex/vz's types, both arches).
			rel("helper/planted_darwin.go"): "package helper\n\nimport \"github.com/Code-Hex/vz/v3\"\n\nvar _ string = vz.VirtualMachineStateRunning\n",
			// vz saves state on arm64 only: a wrong call there.
			rel("helper/planted_darwin_arm64.go"): "package helper\n\nimport \"github.com/Code-Hex/vz/v3\"\n\nfunc planted(m *vz.VirtualMachine) error { return m.SaveMachineStateToPath(42) }\n",
			// amd64's stub is checked too.
			rel("helper/planted_darwin_amd64.go"): "package helper\n\nvar _ = saveState(nil)\n",
			// The pure driver's darwin file.
			rel("planted_darwin.go"): "package vz\n\nvar _ int = MacOSVersion()\n",
		},
	}
	var mu sync.Mutex
	checked := map[string]map[string]*types.Package{}
	opt.Checked = func(arch string, pkgs map[string]*types.Package) {
		mu.Lock()
		checked[arch] = pkgs
		mu.Unlock()
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
	want := []string{
		filepath.Join("core", "driver", "vz", "helper", "planted_darwin.go") + ":5:16: cannot use vz.VirtualMachineStateRunning (constant 1 of int type \"github.com/Code-Hex/vz/v3\".VirtualMachineState) as string value in variable declaration [darwin/arm64,darwin/amd64]",
		filepath.Join("core", "driver", "vz", "helper", "planted_darwin_amd64.go") + ":3:22: not enough arguments in call to saveState\n\thave (nil)\n\twant (*\"github.com/Code-Hex/vz/v3\".VirtualMachine, string) [darwin/amd64]",
		filepath.Join("core", "driver", "vz", "helper", "planted_darwin_arm64.go") + ":5:76: cannot use 42 (untyped int constant) as string value in argument to m.SaveMachineStateToPath [darwin/arm64]",
		filepath.Join("core", "driver", "vz", "planted_darwin.go") + ":3:13: cannot use MacOSVersion() (value of type string) as int value in variable declaration [darwin/arm64,darwin/amd64]",
	}
	slices.Sort(lines)
	if !slices.Equal(lines, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	for _, arch := range opt.Arches {
		checkVZFieldLayout(t, arch, checked[arch][helper.VZPackagePath])
	}
}

// checkVZFieldLayout asserts, on Code-Hex/vz as type-checked from the module
// cache for a darwin build, the unexported fields the helper reads for its
// display window (helper.vmPointers): a vz upgrade that moves them fails
// here, not on a user's Mac.
func checkVZFieldLayout(t *testing.T, arch string, vzpkg *types.Package) {
	t.Helper()
	if vzpkg == nil {
		t.Fatalf("darwin/%s: %s not checked", arch, helper.VZPackagePath)
	}
	obj, ok := vzpkg.Scope().Lookup(helper.VZMachineType).(*types.TypeName)
	if !ok {
		t.Fatalf("darwin/%s: no type %s.%s", arch, helper.VZPackagePath, helper.VZMachineType)
	}
	machine := obj.Type().Underlying().(*types.Struct)
	ptr := field(t, machine, helper.VZPointerField)
	if !ptr.Embedded() {
		t.Errorf("darwin/%s: %s.%s is not embedded", arch, helper.VZMachineType, helper.VZPointerField)
	}
	p, ok := types.Unalias(ptr.Type()).(*types.Pointer)
	if !ok {
		t.Fatalf("darwin/%s: %s.%s is %s, want a pointer", arch, helper.VZMachineType, helper.VZPointerField, ptr.Type())
	}
	named, ok := types.Unalias(p.Elem()).(*types.Named)
	if !ok || named.Obj().Name() != helper.VZObjcPointerType || named.Obj().Pkg().Path() != helper.VZObjcPackagePath {
		t.Fatalf("darwin/%s: %s.%s points to %s, want %s.%s", arch, helper.VZMachineType, helper.VZPointerField, p.Elem(), helper.VZObjcPackagePath, helper.VZObjcPointerType)
	}
	raw := field(t, named.Underlying().(*types.Struct), helper.VZRawPointerField)
	if !types.Identical(raw.Type(), types.Typ[types.UnsafePointer]) {
		t.Errorf("darwin/%s: %s.%s is %s, want unsafe.Pointer", arch, helper.VZObjcPointerType, helper.VZRawPointerField, raw.Type())
	}
	queue := field(t, machine, helper.VZQueueField)
	if !types.Identical(queue.Type(), types.Typ[types.UnsafePointer]) {
		t.Errorf("darwin/%s: %s.%s is %s, want unsafe.Pointer", arch, helper.VZMachineType, helper.VZQueueField, queue.Type())
	}
}

func field(t *testing.T, s *types.Struct, name string) *types.Var {
	t.Helper()
	for i := range s.NumFields() {
		if f := s.Field(i); f.Name() == name {
			return f
		}
	}
	t.Fatalf("no field %s in %s", name, s)
	return nil
}
