package cloudinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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

// WriteISO writes the seed as an ISO 9660 image labelled cidata at path. Rock Ridge
// keeps the lowercase, dashed names (plain ISO 9660 would turn them into USER_DAT.;1).
// The image is built beside path and renamed into place, so path is never a half file.
// It holds the host's private key: the file is 0600.
func WriteISO(path string, c Config) error {
	files, err := Files(c)
	if err != nil {
		return err
	}
	return writeSeed(path, files)
}

// writeSeed writes files (user-data, meta-data, network-config) as the cidata ISO at path.
func writeSeed(path string, files map[string][]byte) error {
	dir := filepath.Dir(path)
	err := store.WriteAtomic(path, 0o600, func(f *os.File) error {
		// go-diskfs stages the files in a workspace directory and lays them out on Finalize.
		ws, err := os.MkdirTemp(dir, ".seed-ws-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(ws)
		fs, err := iso9660.Create(file.New(f, false), 0, 0, 2048, ws)
		if err != nil {
			return err
		}
		for _, name := range []string{MetaDataFile, NetworkConfigFile, UserDataFile} {
			w, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
			if err != nil {
				return fmt.Errorf("add %s: %w", name, err)
			}
			_, werr := w.Write(files[name])
			if err := errors.Join(werr, w.Close()); err != nil {
				return fmt.Errorf("add %s: %w", name, err)
			}
		}
		return fs.Finalize(iso9660.FinalizeOptions{RockRidge: true, VolumeIdentifier: VolumeLabel})
	})
	if err != nil {
		return fmt.Errorf("seed %s: %w", path, err)
	}
	return nil
}
