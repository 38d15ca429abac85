package cloudinit

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/fvmhq/fvm/core/store"
)

// VolumeLabel is the label NoCloud looks for (it matches it case-insensitively).
const VolumeLabel = "cidata"

// Seed file names, as NoCloud reads them from the volume root.
const (
	UserDataFile      = "user-data"
	MetaDataFile      = "meta-data"
	NetworkConfigFile = "network-config"
)

// Files renders the three seed files by name.
func Files(c Config) (map[string][]byte, error) {
	ud, err := UserData(c)
	if err != nil {
		return nil, err
	}
	md, err := MetaData(c)
	if err != nil {
		return nil, err
	}
	nc, err := NetworkConfig(c)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{UserDataFile: ud, MetaDataFile: md, NetworkConfigFile: nc}, nil
}

// WriteISO writes the seed as an ISO 9660 image labelled cidata at path (BuildISO).
// The image is built beside path and renamed into place, so path is never a half file.
// It holds the host's private key: the file is 0600.
func WriteISO(path string, c Config) error {
	b, err := BuildISO(c)
	if err != nil {
		return err
	}
	return store.WriteFileAtomic(path, b, 0o600)
}

// BuildISO renders the seed as an ISO 9660 image labelled cidata, for the
// driver to place where its VM reads it. Rock Ridge keeps the lowercase,
// dashed names (plain ISO 9660 would turn them into USER_DAT.;1).
func BuildISO(c Config) ([]byte, error) {
	files, err := Files(c)
	if err != nil {
		return nil, err
	}
	init, err := InitFiles(c)
	if err != nil {
		return nil, err
	}
	for name, b := range init {
		files[name] = b
	}
	return buildSeed(files)
}

// buildSeed lays files (user-data, meta-data, network-config, fvm-init's
// directory) out as the cidata ISO, in name order. go-diskfs writes to a
// file and stages in a directory: both are private temporaries (the seed
// holds a private key), removed at once.
func buildSeed(files map[string][]byte) ([]byte, error) {
	ws, err := os.MkdirTemp("", "fvm-seed-")
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	defer os.RemoveAll(ws)
	f, err := os.OpenFile(filepath.Join(ws, "seed.iso"), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	defer f.Close()
	stage := filepath.Join(ws, "stage")
	if err := os.Mkdir(stage, 0o700); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	fs, err := iso9660.Create(file.New(f, false), 0, 0, 2048, stage)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if dir := path.Dir(name); dir != "." {
			if err := fs.Mkdir("/" + dir); err != nil {
				return nil, fmt.Errorf("seed: add %s: %w", dir, err)
			}
		}
		w, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return nil, fmt.Errorf("seed: add %s: %w", name, err)
		}
		_, werr := w.Write(files[name])
		if err := errors.Join(werr, w.Close()); err != nil {
			return nil, fmt.Errorf("seed: add %s: %w", name, err)
		}
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{RockRidge: true, VolumeIdentifier: VolumeLabel}); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	return b, nil
}
