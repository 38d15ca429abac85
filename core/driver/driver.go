// Package driver is the seam between the host and hypervisors. Drivers are small;
// optional powers are extra interfaces, discovered with type assertions.
package driver

import (
	"context"
	"errors"
	"net/netip"

	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Driver creates, boots and deletes VMs of one hypervisor.
type Driver interface {
	Name() string
	// Validate checks that this host can run the spec (binaries, firmware, accel).
	Validate(ctx context.Context, spec *vm.Spec) error
	// Create prepares the instance's disks and seed; it is idempotent.
	Create(ctx context.Context, inst *store.Instance) error
	// Start boots the VM and returns once the hypervisor runs (not when the guest is ready).
	Start(ctx context.Context, inst *store.Instance) (Machine, error)
	// Attach re-adopts a VM left running by an earlier host; ErrNotRunning if none is.
	Attach(ctx context.Context, inst *store.Instance) (Machine, error)
	// Delete removes what the driver made outside the instance directory, if anything.
	Delete(ctx context.Context, inst *store.Instance) error
}

// Machine is a running VM.
type Machine interface {
	State(ctx context.Context) (vm.State, error)
	// Shutdown asks the guest to power off (ACPI); the caller may Kill after a timeout.
	Shutdown(ctx context.Context) error
	Kill() error
	// Done is closed (after one value: the exit error, nil for a clean exit) when the VM ends.
	Done() <-chan error
	SSHEndpoint(ctx context.Context) (netip.AddrPort, error)
}

// Optional powers.
type (
	// Consoler attaches to the serial console.
	Consoler interface{ ConsolePath() string }
)

// ErrNotRunning means no hypervisor process is running for the instance.
var ErrNotRunning = errors.New("not running")

// ErrUnsupported means the host cannot run this spec with this driver.
var ErrUnsupported = errors.New("unsupported on this host")
