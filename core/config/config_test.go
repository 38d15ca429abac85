package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

func TestImageCatalogFromConfigAndEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FVM_HOME", dir)
	layout := store.DefaultLayout()
	cfg := `images:
  ubuntu:
    mirror: http://127.0.0.1:9/ubuntu
  catalog:
    distros:
      - name: debian
        releases:
          - version: "14"
            codename: forky
            dir: forky/latest
            file: debian-14-genericcloud-{arch}.qcow2
            checksums: SHA512SUMS
`
	if err := os.WriteFile(filepath.Join(dir, store.ConfigFileName), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FVM_IMAGES_DEBIAN_MIRROR", "http://127.0.0.1:8/debian/")
	v, err := Load(layout)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := ImageCatalog(v)
	if err != nil {
		t.Fatal(err)
	}
	e, err := cat.Resolve("debian:forky", vm.ARM64)
	if err != nil || e.Mirror != "http://127.0.0.1:8/debian" || e.UpstreamArch != "arm64" {
		t.Fatalf("debian:forky: %+v %v", e, err)
	}
	if e, err := cat.Resolve("ubuntu", vm.AMD64); err != nil || e.Mirror != "http://127.0.0.1:9/ubuntu" {
		t.Fatalf("ubuntu mirror from the config file: %+v %v", e, err)
	}

	t.Setenv("FVM_IMAGES_FEDORA_MIRROR", "not a url")
	if _, err := ImageCatalog(v); err == nil || !strings.Contains(err.Error(), "images.fedora.mirror") {
		t.Fatalf("bad mirror: %v", err)
	}
}

// TestConfigFIFONeverBlocks: a FIFO in place of config.yaml is refused at
// once (every command and the host load the config).
func TestConfigFIFONeverBlocks(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FVM_HOME", home)
	l := store.DefaultLayout()
	if err := syscall.Mkfifo(l.ConfigFile(), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(l); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("Load with a FIFO config: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load blocked on a FIFO config.yaml")
	}
}
