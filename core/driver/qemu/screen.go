package qemu

import (
	"context"
	"fmt"
	"image"
	"os"

	"github.com/fvmhq/fvm/core/store"
)

// Screenshot captures the VM's screen with QMP's screendump, which writes a PPM
// of QEMU's console 0 (the one VNC shows) into the instance directory; it is
// read and removed at once.
func (m *Machine) Screenshot(ctx context.Context) (image.Image, error) {
	if m.exited() {
		return nil, fmt.Errorf("vm %q is not running", m.name)
	}
	f, err := os.CreateTemp(m.p.dir, ScreenDumps)
	if err != nil {
		return nil, fmt.Errorf("vm %q: screenshot: %w", m.name, err)
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	err = qmpDo(ctx, m.p.qmp, func(q *QMP) error { return q.ScreenDump(ctx, path) })
	if err != nil {
		return nil, fmt.Errorf("vm %q: screenshot: %w", m.name, err)
	}
	f, _, err = store.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("vm %q: screenshot: %w", m.name, err)
	}
	defer f.Close()
	img, err := decodePPM(f)
	if err != nil {
		return nil, fmt.Errorf("vm %q: screenshot from QEMU: %w", m.name, err)
	}
	return img, nil
}

// ScreenDump writes the screen of console 0 to file as PPM.
func (q *QMP) ScreenDump(ctx context.Context, file string) error {
	return q.Execute(ctx, "screendump", map[string]any{"filename": file}, nil)
}
