package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// pauthImpdefProp makes QEMU's emulated arm64 CPU sign pointers with an
// implementation-defined hash instead of the architected QARMA cipher. Guests
// cannot tell (the algorithm is the CPU's business), and QARMA is the single most
// expensive thing a TCG arm64 boot emulates. It is a TCG-only property (KVM and
// HVF run the host's CPU), and an older QEMU without it refuses to start, so it
// is probed, not assumed.
const pauthImpdefProp = "pauth-impdef=on"

// cpuProbes caches probe answers per binary (path, size, mtime) and CPU string.
var cpuProbes sync.Map

// hasPauthImpdef reports whether qemuPath accepts -cpu max,pauth-impdef=on,
// probing once per binary.
func (d *Driver) hasPauthImpdef(ctx context.Context, qemuPath string) bool {
	cpu := "max," + pauthImpdefProp
	st, err := os.Stat(qemuPath)
	if err != nil {
		return false
	}
	key := fmt.Sprintf("%s\x00%d\x00%d\x00%s", qemuPath, st.Size(), st.ModTime().UnixNano(), cpu)
	if v, ok := cpuProbes.Load(key); ok {
		return v.(bool)
	}
	err = d.opts.CPUProbe(ctx, qemuPath, cpu)
	if err != nil {
		fmt.Fprintf(d.opts.Log, "%s has no -cpu %s (%v): arm64 guests emulate QARMA pointer authentication, which is slower\n", qemuPath, cpu, err)
	}
	cpuProbes.Store(key, err == nil)
	return err == nil
}

// probeCPU starts qemuPath paused on an arm64 virt machine with -cpu cpu and
// quits it through QMP on stdin: QEMU checks CPU properties when it creates the
// CPU, before it reads QMP, and exits non-zero on one it does not have.
func probeCPU(ctx context.Context, qemuPath, cpu string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemuPath, "-nodefaults", "-no-user-config", "-machine", "virt", "-accel", "tcg",
		"-cpu", cpu, "-m", "64", "-display", "none", "-S", "-qmp", "stdio")
	cmd.Stdin = strings.NewReader(`{"execute":"qmp_capabilities"}` + "\n" + `{"execute":"quit"}` + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}
