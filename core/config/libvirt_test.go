package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/store"
)

func TestLibvirtSettings(t *testing.T) {
	home := t.TempDir()
	l := store.Layout{ConfigDir: home}
	load := func(yaml string) (Libvirt, error) {
		t.Helper()
		os.WriteFile(filepath.Join(home, "config.yaml"), []byte(yaml), 0o644)
		v, err := Load(l)
		if err != nil {
			t.Fatal(err)
		}
		return LibvirtSettings(v, "qemu:///session")
	}
	got, err := load("")
	if err != nil || len(got.Hosts) != 1 || got.Hosts[0].URI != "qemu:///session" || got.Pool != "fvm" {
		t.Fatalf("defaults: %+v %v", got, err)
	}
	got, err = load("libvirt:\n  uri: qemu+ssh://me@server/system\n  pool: mine\n  pool_path: /srv/fvm\n")
	if err != nil || got.Hosts[0].URI != "qemu+ssh://me@server/system" || got.Pool != "mine" || got.PoolPath != "/srv/fvm" {
		t.Fatalf("file: %+v %v", got, err)
	}
	t.Setenv("FVM_LIBVIRT_URI", "qemu:///system")
	if got, _ = load("libvirt:\n  uri: qemu+ssh://me@server/system\n"); got.Hosts[0].URI != "qemu:///system" {
		t.Fatalf("FVM_LIBVIRT_URI does not win: %+v", got)
	}
	os.Unsetenv("FVM_LIBVIRT_URI")
	got, err = load("libvirt:\n  hosts:\n    small: qemu:///session\n    big: qemu:///system\n")
	if err != nil || len(got.Hosts) != 2 || got.Hosts[0].Name != "big" || got.Hosts[1].URI != "qemu:///session" {
		t.Fatalf("hosts: %+v %v", got, err)
	}
	for yaml, want := range map[string]string{
		"libvirt:\n  pool: \"\"\n":       "libvirt.pool in",
		"libvirt:\n  pool_path: rel\n":   "not an absolute path",
		"libvirt:\n  hosts: [a, b]\n":    "want a map of name: URI",
		"libvirt:\n  hosts:\n    x: 3\n": "libvirt.hosts.x",
	} {
		if _, err := load(yaml); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", yaml, err, want)
		}
	}
}
