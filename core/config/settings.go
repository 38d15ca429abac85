package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/fvmhq/fvm/core/vm"
)

// Keys of the VM settings: the config file key, FVM_<KEY> in the environment
// and the --<key> flag of run and create.
const (
	KeyCPUs    = "cpus"
	KeyMemory  = "memory"
	KeyDisk    = "disk"
	KeyUser    = "user"
	KeyAccel   = "accel"
	KeyBackend = "backend"
)

// setting is one VM setting: where it lives and how its text becomes the typed value.
type setting struct {
	key string
	set func(s *vm.Settings, v any) error
}

var vmSettings = []setting{
	{KeyCPUs, func(s *vm.Settings, v any) (err error) { s.CPUs, err = wholeNumber(v); return }},
	{KeyMemory, func(s *vm.Settings, v any) error {
		n, err := size(v)
		s.MemoryMiB = int(n >> 20)
		return err
	}},
	{KeyDisk, func(s *vm.Settings, v any) (err error) { s.DiskBytes, err = size(v); return }},
	{KeyUser, func(s *vm.Settings, v any) (err error) { s.User, err = text(v); return }},
	{KeyAccel, func(s *vm.Settings, v any) (err error) { s.Accel, err = text(v); return }},
	{KeyBackend, func(s *vm.Settings, v any) (err error) { s.Backend, err = text(v); return }},
}

// KeyConsolePort is the web console's port on 127.0.0.1 (console.port in the
// config file, FVM_CONSOLE_PORT); unset or 0 picks a free port at each host start.
const KeyConsolePort = "console.port"

// ConsolePort resolves console.port: a bad value names where it came from.
func ConsolePort(v *viper.Viper) (int, error) {
	val, from, ok := lookup(v, nil, KeyConsolePort)
	if !ok {
		return 0, nil
	}
	n, err := wholeNumber(val)
	if err == nil && (n < 0 || n > 65535) {
		err = fmt.Errorf("%d is not a port: use 1-65535, or 0 for a free one", n)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", from, err)
	}
	return n, nil
}

// EnvVar is the environment variable of a setting key (images.debian.mirror → FVM_IMAGES_DEBIAN_MIRROR).
func EnvVar(key string) string {
	return "FVM_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// VMSettings resolves each VM setting once, typed, from the first place that
// has it: a flag given on the command line (flags may be nil), the FVM_*
// environment variable, the config file, then vm.Defaults. A bad value is an
// error naming where it came from (--cpus, FVM_CPUS, or the config file's key).
func VMSettings(v *viper.Viper, flags *pflag.FlagSet) (vm.Settings, error) {
	out := vm.Defaults
	for _, st := range vmSettings {
		val, from, ok := lookup(v, flags, st.key)
		if !ok {
			continue
		}
		if err := st.set(&out, val); err != nil {
			return vm.Settings{}, fmt.Errorf("%s: %w", from, err)
		}
	}
	return out, nil
}

// lookup finds a setting's raw value and says where it came from.
func lookup(v *viper.Viper, flags *pflag.FlagSet, key string) (val any, from string, ok bool) {
	if flags != nil {
		if f := flags.Lookup(key); f != nil && f.Changed {
			return f.Value.String(), "--" + key, true
		}
	}
	env := EnvVar(key)
	if s, set := os.LookupEnv(env); set && s != "" {
		return s, env, true
	}
	if v != nil && v.InConfig(key) {
		return v.Get(key), fmt.Sprintf("%s in %s", key, v.ConfigFileUsed()), true
	}
	return nil, "", false
}

func wholeNumber(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number: use e.g. 4", x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%v is not a whole number: use e.g. 4", v)
}

// size parses a size; a YAML number (memory: 4) has no unit and means GiB.
func size(v any) (int64, error) {
	s, ok := v.(string)
	if !ok {
		s = fmt.Sprint(v)
	}
	return vm.ParseSize(s)
}

func text(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%v is not text", v)
	}
	return strings.TrimSpace(s), nil
}
