// Package libvirt runs fvm's VMs as domains of a libvirt daemon, on this
// machine or another one (qemu+ssh://), through libvirt's RPC protocol
// (go-libvirt: pure Go, no virsh, no libvirt client library). libvirt owns the
// domains: they outlive any fvm host, show in virsh and virt-manager, and fvm
// lists only its own (its metadata element). fvm owns one storage pool per
// libvirt host, with its bases (uploaded once per digest), each VM's qcow2 disk
// backed by one, and its seed. Guests use QEMU's user-mode NIC, so no host
// bridge is needed or touched; fvm reaches the guest's sshd through a
// virtio-serial channel opened as a libvirt stream, which works the same over
// qemu+ssh://, and every session and forward rides that one pinned connection.
package libvirt

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Version is the backend's version in each domain's metadata.
const Version = "fvm-libvirt/1"

// Options configure the driver.
type Options struct {
	// Log receives one-line notices (default: discarded).
	Log io.Writer
	// Settings reads libvirt.* from the config (default: the host's config file).
	Settings func() (config.Libvirt, error)
	// FVMVersion goes into each domain's metadata.
	FVMVersion string
	// LocalKVM, when set, says why KVM on this machine cannot boot a
	// standard guest ("" when it can). libvirt offers KVM wherever /dev/kvm
	// exists, even where the kernel behind it hangs a guest (kvm_pvm) or
	// libvirt's QEMU may not open it; for a daemon on this machine and
	// --accel auto, a reason here means TCG.
	LocalKVM func() string
}

// Driver is the libvirt driver.
type Driver struct {
	opts Options

	mu      sync.Mutex
	clients map[string]*client // by URI
}

var _ driver.Driver = (*Driver)(nil)

// New returns a libvirt driver.
func New(opts Options) *Driver {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Settings == nil {
		opts.Settings = func() (config.Libvirt, error) {
			v, err := config.Load(store.DefaultLayout())
			if err != nil {
				return config.Libvirt{}, err
			}
			return config.LibvirtSettings(v, DefaultURI())
		}
	}
	return &Driver{opts: opts, clients: map[string]*client{}}
}

// Name is "libvirt".
func (d *Driver) Name() string { return "libvirt" }

// Caps: qcow2 volumes on a base volume; domains outlive fvm's host; serial
// console and VNC through libvirt; screenshots; suspend and resume by
// libvirt's managed save. No shares (the libvirt host may be another
// machine), no ISO installs, no warm clones (noWarmClones).
func (d *Driver) Caps(_ context.Context, spec *vm.Spec) driver.Caps {
	c := driver.Caps{
		Disk:                driver.DiskQCOW2Overlay,
		OutlivesHost:        true,
		SerialAttach:        true,
		Display:             driver.DisplayVNC,
		Screenshot:          true,
		SaveState:           true,
		Forwards:            driver.ForwardSSH,
		SSHPort:             SSHChannel,
		StaticForwardsBySSH: true,
		Hosts:               true,
	}
	c.Off(driver.CapShares, "the libvirt backend shares no folders (-v): its VMs may run on another machine")
	c.Off(driver.CapInstallISO, "the libvirt backend installs no ISO (--iso): use --backend qemu")
	c.Off(driver.CapRosetta, "--rosetta needs the vz backend on an Apple silicon Mac")
	c.Off(driver.CapWarmClone, noWarmClones)
	return c
}

// noWarmClones is why libvirt VMs boot cold. A warm clone restores one saved
// state under many domains; libvirt restores a saved image only under the
// UUID it was saved with (its ABI check: "Target domain uuid ... does not
// match source", checked with libvirt 9.0 here, restore --xml with a new
// name and UUID), and two domains cannot share one. Rewriting libvirt's own
// save-image header on the server was judged too brittle.
const noWarmClones = "libvirt VMs boot cold: libvirt restores a saved state only under the domain UUID it was saved with, so one saved template cannot become many domains"

// hosts returns the configured daemons.
func (d *Driver) hosts() (config.Libvirt, error) {
	return d.opts.Settings()
}

// clientFor returns the (shared, reconnecting) client of a daemon.
func (d *Driver) clientFor(uri string) (*client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.clients[uri]; c != nil {
		return c, nil
	}
	t, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	c := newClient(t)
	d.clients[uri] = c
	return c, nil
}

// Validate: the daemon answers, runs QEMU and has the guest's arch.
func (d *Driver) Validate(ctx context.Context, spec *vm.Spec) error {
	if err := driver.CheckHostPorts(spec.Ports); err != nil {
		return err
	}
	cfg, err := d.hosts()
	if err != nil {
		return fmt.Errorf("%w: %v", driver.ErrUnsupported, err)
	}
	if spec.On != "" {
		h, err := cfg.Host(spec.On)
		if err != nil {
			return fmt.Errorf("%w: %v", driver.ErrUnsupported, err)
		}
		cfg.Hosts = []config.LibvirtHost{h}
	}
	var errs []error
	for _, h := range cfg.Hosts {
		c, err := d.clientFor(h.URI)
		if err == nil {
			_, err = hostFacts(ctx, c, spec.Arch)
		}
		if err == nil {
			return nil // one daemon that can run it is enough: placement picks
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("%w: %w", driver.ErrUnsupported, errors.Join(errs...))
}

// newUUID returns a random (version 4) UUID for a new domain.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
