// Package config loads settings with viper: the config file, FVM_* environment
// variables and command-line flags, in rising priority. VM settings resolve in
// settings.go, against the one table of defaults, vm.Defaults.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/viper"

	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
)

// Load reads the config file under layout (absent is fine) with FVM_* env bound.
// Nested keys map to env with underscores: images.debian.mirror ↔ FVM_IMAGES_DEBIAN_MIRROR.
func Load(layout store.Layout) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix("FVM")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	v.SetConfigFile(layout.ConfigFile())
	if err := checkRegular(layout.ConfigFile()); err != nil {
		return nil, err
	}
	if err := v.ReadInConfig(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		var nf viper.ConfigFileNotFoundError
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("config file %s: %w (fix or remove it)", layout.ConfigFile(), err)
		}
	}
	return v, nil
}

// checkRegular refuses a config file that is not a regular file (a FIFO
// would block every fvm command and the host; a symlink to one in your
// dotfiles is fine): it is opened without blocking and checked first.
func checkRegular(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil // missing, or unreadable: viper says which
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("config file %q is not a regular file (%s): replace it with a YAML file or remove it", path, st.Mode().Type())
	}
	return nil
}

// KeyImagesWarm turns warm snapshots on or off (default on): `images.warm: false`
// in the config file or FVM_IMAGES_WARM=false.
const KeyImagesWarm = "images.warm"

// KeyImageCatalog holds catalog additions in catalog.yaml's shape (a list of
// distros under images.catalog.distros): new releases or distros, or changed
// releases of built-in ones.
const KeyImageCatalog = "images.catalog"

// ImageCatalog returns the built-in image catalog with the config file's
// additions merged and its mirrors applied (images.<distro>.mirror and
// FVM_IMAGES_<DISTRO>_MIRROR). Errors name the setting to fix.
func ImageCatalog(v *viper.Viper) (*image.Catalog, error) {
	cat := image.Builtin()
	if v.IsSet(KeyImageCatalog) {
		var extra image.Catalog
		if err := v.UnmarshalKey(KeyImageCatalog, &extra); err != nil {
			return nil, fmt.Errorf("config %s: %w", KeyImageCatalog, err)
		}
		if err := cat.Merge(&extra); err != nil {
			return nil, fmt.Errorf("config %s: %w", KeyImageCatalog, err)
		}
	}
	if err := cat.SetMirrors(Mirrors(v, cat.Names())); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := cat.SetIndexes(Indexes(v, cat.Names())); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cat, nil
}

// Indexes returns the checksum index overrides of distros that sign nothing,
// from images.<distro>.index (FVM_IMAGES_<DISTRO>_INDEX).
func Indexes(v *viper.Viper, distros []string) map[string]string {
	out := map[string]string{}
	for _, d := range distros {
		if m := v.GetString("images." + d + ".index"); m != "" {
			out[d] = m
		}
	}
	return out
}

// Mirrors returns image mirror overrides by distro from images.<distro>.mirror,
// including FVM_IMAGES_<DISTRO>_MIRROR for the distros named.
func Mirrors(v *viper.Viper, distros []string) map[string]string {
	out := map[string]string{}
	for _, d := range distros {
		if m := v.GetString("images." + d + ".mirror"); m != "" {
			out[d] = m
		}
	}
	return out
}
