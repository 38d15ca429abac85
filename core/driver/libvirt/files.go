package libvirt

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/fvmhq/fvm/core/store"
)

// Files the libvirt driver keeps in an instance directory, beside store's.
// The VM itself (domain, disk, seed, serial log) lives on the libvirt host.
const (
	// RecordFile says where the VM lives: which daemon, pool and domain.
	RecordFile = "libvirt.json"
	// SerialCopy is the local copy of the serial log, which the driver keeps
	// in step with the one virtlogd writes on the libvirt host (OpenLog).
	SerialCopy = store.SerialLog
)

// record is what the driver knows of a VM across host restarts.
type record struct {
	Host   string `json:"host,omitempty"` // libvirt.hosts name; "" for libvirt.uri
	URI    string `json:"uri"`            // the daemon's URI when the VM was made
	Pool   string `json:"pool"`
	UUID   string `json:"uuid"`   // the domain's
	Domain string `json:"domain"` // its name, fvm-NAME
	Base   string `json:"base,omitempty"`
	Digest string `json:"digest,omitempty"`
	Accel  string `json:"accel"` // kvm or tcg
	// AccelWhy says why TCG was chosen ("" for kvm): the start's notice.
	AccelWhy string `json:"accelWhy,omitempty"`
}

func loadRecord(dir string) (record, error) {
	var r record
	err := store.ReadJSON(filepath.Join(dir, RecordFile), &r)
	return r, err
}

func saveRecord(dir string, r record) error {
	return store.WriteJSON(filepath.Join(dir, RecordFile), r)
}

func noRecord(err error) bool { return errors.Is(err, fs.ErrNotExist) }
