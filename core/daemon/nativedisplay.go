package daemon

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoNativeDisplay means the VM has no native display window to show here:
// its machine shows its screen another way (QEMU: the web console), or this
// process does not host the VMs (another host does, and only it can ask).
var ErrNoNativeDisplay = errors.New("no native display window")

// ShowNativeDisplay brings a running VM's own display window to the front
// (driver.DisplayNative: vz's NSWindow, owned by the VM's helper process).
// The menu-bar app calls it for Open Display; the display API answers
// "shown natively" when it succeeds, and falls back to the web console on
// ErrNoNativeDisplay.
func (d *Daemon) ShowNativeDisplay(ctx context.Context, name string) error {
	_, _, r, err := d.lookup(ctx, name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	serving := d.serving
	d.mu.Unlock()
	if !serving {
		return fmt.Errorf("vm %q: %w: this process does not host the VMs", name, ErrNoNativeDisplay)
	}
	if r == nil {
		return notRunning(name)
	}
	if r.Window == nil {
		return fmt.Errorf("vm %q: %w: its backend shows the screen in the web console", name, ErrNoNativeDisplay)
	}
	return r.Window.ShowWindow(ctx)
}
