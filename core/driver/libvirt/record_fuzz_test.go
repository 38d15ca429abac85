package libvirt

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecord: whatever libvirt.json holds, reading it and parsing the URI
// it names returns values or errors, never a panic.
func FuzzRecord(f *testing.F) {
	f.Add([]byte(`{"host":"a","uri":"qemu+ssh://me@server/system","pool":"fvm","uuid":"u","domain":"fvm-x","accel":"tcg"}`))
	f.Add([]byte(`{"uri":"qemu+unix:///session?socket=/tmp/s","pool":""}`))
	f.Add([]byte(`{"uri":"qemu:///system"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, RecordFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := loadRecord(dir)
		if err != nil {
			return
		}
		parseURI(r.URI)
	})
}
