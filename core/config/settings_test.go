package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// loadWith writes config.yaml (when given) under a fresh FVM_HOME and loads it.
func loadWith(t *testing.T, yaml string) *viper.Viper {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("FVM_HOME", dir)
	for _, k := range []string{KeyCPUs, KeyMemory, KeyDisk, KeyUser, KeyAccel, KeyBackend} {
		t.Setenv(EnvVar(k), "")
	}
	if yaml != "" {
		if err := os.WriteFile(filepath.Join(dir, store.ConfigFileName), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, err := Load(store.DefaultLayout())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func vmFlagSet(t *testing.T, argv ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	for _, k := range []string{KeyCPUs, KeyMemory, KeyDisk, KeyUser, KeyAccel, KeyBackend} {
		fs.String(k, "", "")
	}
	if err := fs.Parse(argv); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestSettingsPrecedence is the README's promise: flags beat FVM_* variables
// beat the config file beat the defaults, each setting on its own.
func TestSettingsPrecedence(t *testing.T) {
	v := loadWith(t, "cpus: 3\nmemory: 3G\ndisk: 30G\nuser: alice\n")
	t.Setenv("FVM_CPUS", "5")
	t.Setenv("FVM_MEMORY", "5G")
	got, err := VMSettings(v, vmFlagSet(t, "--cpus", "7"))
	if err != nil {
		t.Fatal(err)
	}
	want := vm.Defaults
	want.CPUs, want.MemoryMiB, want.DiskBytes, want.User = 7, 5<<10, 30<<30, "alice"
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// Nothing given anywhere: the one table of defaults.
	got, err = VMSettings(loadWith(t, ""), vmFlagSet(t))
	if err != nil || got != vm.Defaults {
		t.Fatalf("defaults: %+v %v", got, err)
	}
	// No flag set at all (the host's view): env and file only.
	v = loadWith(t, "backend: qemu\n")
	if got, err = VMSettings(v, nil); err != nil || got.Backend != "qemu" {
		t.Fatalf("no flags: %+v %v", got, err)
	}
}

func TestSettingsErrorsNameTheirSource(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		env  map[string]string
		argv []string
		want []string
	}{
		{env: map[string]string{"FVM_CPUS": "4.5abc"}, want: []string{"FVM_CPUS", `"4.5abc" is not a whole number`}},
		{argv: []string{"--memory", "4096"}, want: []string{"--memory", "4096 GiB?", "4096M"}},
		{env: map[string]string{"FVM_DISK": "20X"}, want: []string{"FVM_DISK", `"20X" is invalid`, "2G"}},
		{yaml: "memory: 4096\n", want: []string{"memory in ", "config.yaml", "4096 GiB?", "4096M"}},
		{yaml: "cpus: two\n", want: []string{"cpus in ", "config.yaml", `"two" is not a whole number`}},
		{yaml: "user: [a, b]\n", want: []string{"user in ", "is not text"}},
	} {
		v := loadWith(t, tc.yaml)
		for k, val := range tc.env {
			t.Setenv(k, val)
		}
		_, err := VMSettings(v, vmFlagSet(t, tc.argv...))
		if err == nil {
			t.Errorf("%+v: no error", tc)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q lacks %q", tc, err, w)
			}
		}
	}
}

func TestConsolePort(t *testing.T) {
	t.Setenv(EnvVar(KeyConsolePort), "")
	if p, err := ConsolePort(loadWith(t, "")); err != nil || p != 0 {
		t.Errorf("unset: %d, %v; want 0 (a free port)", p, err)
	}
	if p, err := ConsolePort(loadWith(t, "console:\n  port: 7070\n")); err != nil || p != 7070 {
		t.Errorf("config file: %d, %v", p, err)
	}
	v := loadWith(t, "console:\n  port: 7070\n")
	t.Setenv("FVM_CONSOLE_PORT", "7171")
	if p, err := ConsolePort(v); err != nil || p != 7171 {
		t.Errorf("environment over the file: %d, %v", p, err)
	}
	t.Setenv("FVM_CONSOLE_PORT", "70000")
	if _, err := ConsolePort(v); err == nil || !strings.Contains(err.Error(), "FVM_CONSOLE_PORT") || !strings.Contains(err.Error(), "not a port") {
		t.Errorf("bad port: %v", err)
	}
	t.Setenv("FVM_CONSOLE_PORT", "")
	if _, err := ConsolePort(loadWith(t, "console:\n  port: web\n")); err == nil || !strings.Contains(err.Error(), "console.port in") {
		t.Errorf("bad port in the file: %v", err)
	}
}

// TestBareSizesAreGiB: `--memory 4 --disk 20`, as the tools fvm replaces read
// them, from a flag, an FVM_* variable or the config file alike.
func TestBareSizesAreGiB(t *testing.T) {
	want := vm.Defaults
	want.MemoryMiB, want.DiskBytes = 4<<10, 20<<30
	got, err := VMSettings(loadWith(t, ""), vmFlagSet(t, "--memory", "4", "--disk", "20"))
	if err != nil || got != want {
		t.Errorf("flags: %+v %v; want %+v", got, err, want)
	}
	v := loadWith(t, "memory: 4\n")
	t.Setenv("FVM_DISK", "20")
	if got, err = VMSettings(v, vmFlagSet(t)); err != nil || got != want {
		t.Errorf("file and env: %+v %v; want %+v", got, err, want)
	}
}
