package helper

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/driver"
)

// TestDisplayWithoutLoginSession: a helper whose host was started over SSH
// (no window server) refuses the display with the reason, touches no window,
// and its VM runs on.
func TestDisplayWithoutLoginSession(t *testing.T) {
	d := newDriver(t)
	t.Setenv(fakeNoSessionEnv, "1")
	ctx := context.Background()
	inst := newInstance(t, "nosession")
	if err := d.Create(ctx, inst, driver.CreateInput{Base: rawBase(inst)}); err != nil {
		t.Fatal(err)
	}
	m, err := d.Start(ctx, inst, driver.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	err = m.(driver.NativeDisplay).ShowWindow(ctx)
	if err == nil || !strings.Contains(err.Error(), "no display without a login session") || !strings.Contains(err.Error(), "fvm console") {
		t.Fatalf("display without a login session: %v", err)
	}
	if _, err := os.Stat(inst.Path(windowMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the VM was asked for a window anyway: %v", err)
	}
	if st := state(t, m); st != "running" {
		t.Errorf("the VM is %s after the refused display, want running", st)
	}
}
