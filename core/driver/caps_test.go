package driver

import (
	"context"
	"errors"
	"image"
	"net/netip"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// bare is a driver with no optional powers; keeper adds saved state.
type bare struct{ caps Caps }

func (b bare) Name() string                                             { return "bare" }
func (b bare) Caps(context.Context, *vm.Spec) Caps                      { return b.caps }
func (bare) Validate(context.Context, *vm.Spec) error                   { return nil }
func (bare) Create(context.Context, *store.Instance, CreateInput) error { return nil }
func (bare) Start(context.Context, *store.Instance, StartOptions) (Machine, error) {
	return nil, nil
}
func (bare) Attach(context.Context, *store.Instance) (Machine, error) { return nil, ErrNotRunning }
func (bare) Delete(context.Context, *store.Instance) error            { return nil }
func (bare) BasesInUse(string) ([]string, error)                      { return nil, nil }
func (bare) OpenLog(*store.Instance, string) (LogFile, error)         { return nil, errors.New("none") }

type keeper struct{ bare }

func (keeper) HasSavedState(*store.Instance) bool { return false }
func (keeper) DiscardState(*store.Instance) error { return nil }

// machine has every machine power.
type machine struct{}

func (machine) Info() MachineInfo                                        { return MachineInfo{} }
func (machine) State(context.Context) (vm.State, error)                  { return vm.Running, nil }
func (machine) Shutdown(context.Context) error                           { return nil }
func (machine) Kill() error                                              { return nil }
func (machine) Done() <-chan error                                       { return nil }
func (machine) SSHEndpoint(context.Context) (netip.AddrPort, error)      { return netip.AddrPort{}, nil }
func (machine) Suspend(context.Context) error                            { return nil }
func (machine) AddForward(context.Context, netip.AddrPort, uint16) error { return nil }
func (machine) RemoveForward(context.Context, netip.AddrPort) error      { return nil }
func (machine) ShowWindow(context.Context) error                         { return nil }
func (machine) Screenshot(context.Context) (image.Image, error)          { return nil, nil }

// TestBindAgrees: a capability the driver claims without the power behind
// it is turned off with a reason, so Caps and powers never disagree.
func TestBindAgrees(t *testing.T) {
	ctx := context.Background()
	claim := Caps{SaveState: true, WarmClone: true}
	v := Bind(ctx, bare{claim}, &vm.Spec{})
	if v.Caps.SaveState || v.States != nil || v.Caps.Why[CapSaveState] == "" {
		t.Errorf("save state without a StateKeeper: %+v", v.Caps)
	}
	if v.Caps.WarmClone || v.Warm != nil || !strings.Contains(v.Caps.WhyNot(CapWarmClone, "bare"), "warm") {
		t.Errorf("warm clones without a Warmer: %+v", v.Caps)
	}
	v = Bind(ctx, keeper{bare{claim}}, &vm.Spec{})
	if !v.Caps.SaveState || v.States == nil {
		t.Errorf("a StateKeeper that may save: %+v", v.Caps)
	}
	// A VM whose spec rules saving out gets no power, whatever the driver has.
	off := Caps{}
	off.Off(CapSaveState, "shares are attached")
	if v := Bind(ctx, keeper{bare{off}}, &vm.Spec{}); v.States != nil || v.Caps.WhyNot(CapSaveState, "x") != "shares are attached" {
		t.Errorf("per-VM refusal: %+v", v.Caps)
	}
}

// TestRunPowers: a machine's powers are handed out only where the VM's Caps allow.
func TestRunPowers(t *testing.T) {
	ctx := context.Background()
	full := Caps{SaveState: true, Forwards: ForwardHypervisor, Display: DisplayNative, Screenshot: true}
	r := Bind(ctx, keeper{bare{full}}, &vm.Spec{}).Run(machine{})
	if r.Suspend == nil || r.Forward == nil || r.Window == nil || r.Screen == nil || r.VNC != nil || r.Serial != nil {
		t.Errorf("all allowed: %+v", r)
	}
	r = Bind(ctx, keeper{bare{Caps{Forwards: ForwardSSH, Display: DisplayVNC}}}, &vm.Spec{}).Run(machine{})
	if r.Suspend != nil || r.Forward != nil || r.Window != nil || r.Screen != nil {
		t.Errorf("none allowed: %+v", r)
	}
}

// TestCheckNeeds: an option a backend cannot serve is one line naming why.
func TestCheckNeeds(t *testing.T) {
	spec := &vm.Spec{Name: "web1", Mounts: []vm.Mount{{HostPath: "/src", GuestPath: "/src"}}}
	err := CheckNeeds("plain", spec, Caps{})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "the plain backend cannot share folders (-v)") || strings.Contains(err.Error(), "\n") {
		t.Errorf("shares: %v", err)
	}
	if err := CheckNeeds("plain", spec, Caps{Shares: true}); err != nil {
		t.Errorf("shares allowed: %v", err)
	}
	c := Caps{}
	c.Off(CapRosetta, "Rosetta runs on Apple silicon Macs only")
	if err := CheckNeeds("vz", &vm.Spec{Name: "r", Rosetta: true}, c); err == nil || !strings.Contains(err.Error(), "Apple silicon Macs only") {
		t.Errorf("the driver's own reason: %v", err)
	}
	if err := CheckNeeds("vz", &vm.Spec{Name: "i", ISO: "/x.iso"}, Caps{}); err == nil || !strings.Contains(err.Error(), "--iso") {
		t.Errorf("ISO: %v", err)
	}
	if l := (Caps{Disk: DiskQCOW2Overlay, SaveState: true}).List(); strings.Join(l, ",") != "disk: qcow2-overlay,serial-console,save-state" {
		t.Errorf("List = %q", l)
	}
}
