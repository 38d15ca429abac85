package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/fvmhq/fvm/core/vm"
)

func createSpec(t *testing.T, argv ...string) (vm.Spec, error) {
	t.Helper()
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh keys picked up
	var f vmFlags
	cmd := &cobra.Command{Use: "create"}
	f.register(cmd)
	f.registerInstall(cmd)
	if err := cmd.ParseFlags(argv); err != nil {
		t.Fatal(err)
	}
	return f.spec(&app{}, cmd, cmd.Flags().Args())
}

func TestCreateISOSpec(t *testing.T) {
	dir := t.TempDir()
	iso := filepath.Join(dir, "ubuntu.iso")
	os.WriteFile(iso, []byte("iso"), 0o644)
	t.Chdir(dir)

	s, err := createSpec(t, "u1", "--iso", "ubuntu.iso", "--auto-install", "--disk", "30G")
	if err != nil {
		t.Fatal(err)
	}
	if s.ISO != iso || !s.AutoInstall || s.Image != "" || s.Name != "u1" || s.DiskBytes != 30<<30 {
		t.Fatalf("spec %+v", s)
	}
	s, err = createSpec(t, "arm64", "u2", "--iso", iso)
	if err != nil || s.Arch != vm.ARM64 || s.Name != "u2" || s.AutoInstall {
		t.Fatalf("spec %+v %v", s, err)
	}
	if s, err = createSpec(t, "--iso", iso); err != nil || s.Name != "" {
		t.Fatalf("no name: %+v %v", s, err)
	}

	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"u1", "--iso", "missing.iso"}, `--iso "missing.iso"`},
		{[]string{"debian-local", "u1", "--iso", iso}, "no image"},
		{[]string{"debian-local", "u1", "--auto-install"}, "--auto-install needs"},
	} {
		_, err := createSpec(t, tc.argv...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.argv, err, tc.want)
		}
	}
}

func TestImageOf(t *testing.T) {
	if got := imageOf(vm.Spec{ISO: "/isos/ubuntu-24.04.iso"}); got != "iso:ubuntu-24.04.iso" {
		t.Errorf("imageOf = %q", got)
	}
	if got := imageOf(vm.Spec{Image: "debian"}); got != "debian" {
		t.Errorf("imageOf = %q", got)
	}
}

func TestPositionalArchOrName(t *testing.T) {
	if s, err := createSpec(t, "debian", "arm64", "web1"); err != nil || s.Arch != vm.ARM64 || s.Name != "web1" {
		t.Fatalf("IMAGE ARCH NAME: %+v %v", s, err)
	}
	if s, err := createSpec(t, "debian", "web1"); err != nil || s.Arch != "" || s.Name != "web1" {
		t.Fatalf("IMAGE NAME: %+v %v", s, err)
	}
	_, err := createSpec(t, "debian", "ppc64")
	if err == nil || !strings.Contains(err.Error(), `architecture "ppc64" is not supported`) || !strings.Contains(err.Error(), "--name ppc64") {
		t.Fatalf("IMAGE ppc64: err = %v, want an unsupported-architecture error", err)
	}
}
