package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBlankCreateSpec: `fvm create --name X` (no image, no ISO) is a blank
// VM; without a name it is the usual error, now naming the blank form.
func TestBlankCreateSpec(t *testing.T) {
	s, err := createSpec(t, "--name", "scratch", "--disk", "20", "--memory", "4")
	if err != nil || !s.Blank || s.Image != "" || s.ISO != "" || s.Name != "scratch" || s.DiskBytes != 20<<30 || s.MemoryMiB != 4<<10 {
		t.Fatalf("blank spec %+v %v", s, err)
	}
	if _, err := createSpec(t); err == nil || !strings.Contains(err.Error(), "fvm create --name NAME") {
		t.Errorf("no image, no name: %v", err)
	}
	if s, err := createSpec(t, "debian-local", "--name", "web1"); err != nil || s.Blank || s.Image != "debian-local" {
		t.Errorf("an image and a name: %+v %v", s, err)
	}
	if s, _ := createSpec(t, "--name", "quiet", "--sound=false", "debian-local"); !s.NoSound {
		t.Errorf("--sound=false: %+v", s)
	}
}

func TestStartISO(t *testing.T) {
	iso := filepath.Join(t.TempDir(), "i.iso")
	os.WriteFile(iso, []byte("x"), 0o644)
	if p, err := startISO(iso, []string{"a"}); err != nil || p != iso {
		t.Errorf("startISO: %q %v", p, err)
	}
	if _, err := startISO(iso, []string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "one VM") {
		t.Errorf("two VMs: %v", err)
	}
	if _, err := startISO("/no/such.iso", []string{"a"}); err == nil || !strings.Contains(err.Error(), "--iso /no/such.iso") {
		t.Errorf("missing file: %v", err)
	}
	if p, err := startISO("", []string{"a", "b"}); err != nil || p != "" {
		t.Errorf("no --iso: %q %v", p, err)
	}
}
