//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/store"
)

// TestBootFloor compares `fvm run -d` to SSH-ready with a bare qemu-system-x86_64
// booting the same image and an identical seed, in the same run. It costs two
// boots, so it runs only with FVM_E2E_BENCH=1.
func TestBootFloor(t *testing.T) {
	if os.Getenv("FVM_E2E_BENCH") == "" {
		t.Skip("set FVM_E2E_BENCH=1 to measure fvm against bare QEMU")
	}
	ensureImage(t)
	var imgs []api.Image
	json.Unmarshal([]byte(mustFVM(t, "images", "--format", "json")), &imgs)
	base := ""
	for _, im := range imgs {
		if im.Name == "debian-local" {
			base = im.Path
		}
	}
	if base == "" {
		t.Fatal("no debian-local image")
	}

	// fvm: create → boot → SSH ready.
	t0 := time.Now()
	mustFVM(t, "run", "-d", "debian-local", "floor1")
	fvmTime := time.Since(t0)
	mustFVM(t, "exec", "floor1", "true")
	seedDir := t.TempDir()
	for _, f := range []string{store.SeedFile, store.HostKeyPubFile} {
		b, err := os.ReadFile(filepath.Join(layout.InstanceDir("floor1"), f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(seedDir, f), b, 0o600)
	}
	mustFVM(t, "rm", "-f", "floor1")

	// Bare QEMU: same base, same seed, same machine shape, plain user networking.
	dir := t.TempDir()
	overlay := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay, "20G").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	vars := filepath.Join(dir, "vars.fd")
	b, _ := os.ReadFile("/usr/share/OVMF/OVMF_VARS_4M.fd")
	os.WriteFile(vars, b, 0o600)
	port := freePort(t)
	t1 := time.Now()
	cmd := exec.Command("qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "2048",
		"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd", "-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "file="+overlay+",if=virtio,format=qcow2", "-drive", "file="+filepath.Join(seedDir, store.SeedFile)+",if=virtio,format=raw,readonly=on",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22", port), "-device", "virtio-net-pci,netdev=n0",
		"-device", "virtio-rng-pci", "-display", "none", "-serial", "file:"+filepath.Join(dir, "serial.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	hostKey, _ := os.ReadFile(filepath.Join(seedDir, store.HostKeyPubFile))
	pem, err := os.ReadFile(layout.UserKey())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cl, err := sshx.WaitReady(ctx, sshx.Target{Addr: fmt.Sprintf("127.0.0.1:%d", port), User: "fvm", Signer: signer, HostKey: strings.TrimSpace(string(hostKey))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	bare := time.Since(t1)
	t.Logf("MEASURE fvm run -d → SSH ready: %s; bare qemu → SSH ready: %s; fvm overhead: %s", fvmTime.Round(100*time.Millisecond), bare.Round(100*time.Millisecond), (fvmTime - bare).Round(100*time.Millisecond))
}
