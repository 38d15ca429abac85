//go:build darwin && cgo

package helper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/Code-Hex/vz/v3"
	"github.com/progrium/darwinkit/objc"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

var native = platform{newVM: newVZ, probe: probeVZ, session: loginSession}

// vzVM is a VM of Virtualization.framework, through Code-Hex/vz. Its
// blocking calls (Start, Stop, Pause, save) wait for completion handlers on
// the VM's own dispatch queue, so they are made from goroutines, never from
// the main thread or that queue.
type vzVM struct {
	plan   vzd.Plan
	vm     *vz.VirtualMachine
	config *vz.VirtualMachineConfiguration
	states chan vzd.MachineState
	win    *window
	log    *slog.Logger
}

// newVZ returns the NewVM that builds plans with Virtualization.framework.
func newVZ(loop *mainLoop) NewVM {
	return func(plan vzd.Plan, netFile *os.File, log *slog.Logger) (VM, error) {
		noAppNap()
		config, err := configure(plan, netFile, log)
		if err != nil {
			return nil, err
		}
		m, err := vz.NewVirtualMachine(config)
		if err != nil {
			return nil, err
		}
		v := &vzVM{plan: plan, vm: m, config: config, states: make(chan vzd.MachineState), log: log}
		v.win = newWindow(loop, m, plan)
		go v.relayStates()
		return v, nil
	}
}

// relayStates is the one reader of vz's StateChangedNotify (it hands the same
// channel to every caller); the helper's fan-out takes it from here.
func (v *vzVM) relayStates() {
	for st := range v.vm.StateChangedNotify() {
		v.states <- stateName(st)
	}
	close(v.states)
}

func (v *vzVM) States() <-chan vzd.MachineState { return v.states }
func (v *vzVM) State() vzd.MachineState         { return stateName(v.vm.State()) }

func stateName(s vz.VirtualMachineState) vzd.MachineState {
	switch s {
	case vz.VirtualMachineStateStopped:
		return vzd.StateStopped
	case vz.VirtualMachineStateRunning:
		return vzd.StateRunning
	case vz.VirtualMachineStatePaused:
		return vzd.StatePaused
	case vz.VirtualMachineStateError:
		return vzd.StateError
	case vz.VirtualMachineStateStarting:
		return vzd.StateStarting
	case vz.VirtualMachineStatePausing:
		return vzd.StatePausing
	case vz.VirtualMachineStateResuming:
		return vzd.StateResuming
	case vz.VirtualMachineStateStopping:
		return vzd.StateStopping
	case vz.VirtualMachineStateSaving:
		return vzd.StateSaving
	case vz.VirtualMachineStateRestoring:
		return vzd.StateRestoring
	}
	return vzd.StateError
}

func (v *vzVM) Start(ctx context.Context) error {
	if v.plan.RestoreFrom != "" {
		if err := restoreState(v.vm, v.plan.RestoreFrom); err != nil {
			return err
		}
		return v.vm.Resume()
	}
	return v.vm.Start()
}

func (v *vzVM) RequestStop() error {
	if !v.vm.CanRequestStop() {
		return fmt.Errorf("the VM is %s: the guest cannot be asked to stop now", v.State())
	}
	_, err := v.vm.RequestStop()
	return err
}

func (v *vzVM) Stop() error {
	if !v.vm.CanStop() {
		return fmt.Errorf("the VM is %s: it cannot be stopped now", v.State())
	}
	return v.vm.Stop()
}

// Save pauses the VM and writes its state; on failure it resumes it.
func (v *vzVM) Save(path string) error {
	if v.vm.CanPause() {
		if err := v.vm.Pause(); err != nil {
			return fmt.Errorf("pause: %w", err)
		}
	}
	if err := saveState(v.vm, path); err != nil {
		if v.vm.CanResume() {
			v.vm.Resume()
		}
		return err
	}
	return nil
}

func (v *vzVM) ShowWindow(ctx context.Context) (int, error) { return v.win.show(ctx) }

// Freeze pauses the VM, saves its state (when saveTo is set), runs during,
// and resumes it whatever failed.
func (v *vzVM) Freeze(saveTo string, during func() error) (time.Duration, error) {
	if !v.vm.CanPause() {
		return 0, fmt.Errorf("the VM is %s: it cannot be paused now", v.State())
	}
	t0 := time.Now()
	if err := v.vm.Pause(); err != nil {
		return 0, fmt.Errorf("pause: %w", err)
	}
	var err error
	if saveTo != "" {
		err = saveState(v.vm, saveTo)
	}
	if err == nil {
		err = during()
	}
	if v.vm.CanResume() {
		if rerr := v.vm.Resume(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("resume: %w", rerr))
		}
	}
	return time.Since(t0), err
}

// configure builds the VZVirtualMachineConfiguration of a plan.
func configure(plan vzd.Plan, netFile *os.File, log *slog.Logger) (*vz.VirtualMachineConfiguration, error) {
	boot, err := bootLoader(plan.Boot)
	if err != nil {
		return nil, fmt.Errorf("EFI boot loader: %w", err)
	}
	config, err := vz.NewVirtualMachineConfiguration(boot, plan.CPUs, plan.MemoryBytes)
	if err != nil {
		return nil, err
	}
	id, err := machineIdentifier(plan.Platform.MachineIdentifier)
	if err != nil {
		return nil, fmt.Errorf("machine identifier: %w", err)
	}
	platform, err := vz.NewGenericPlatformConfiguration(vz.WithGenericMachineIdentifier(id))
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	config.SetPlatformVirtualMachineConfiguration(platform)

	var disks []vz.StorageDeviceConfiguration
	for _, d := range plan.Disks {
		att, err := vz.NewDiskImageStorageDeviceAttachment(d.Path, d.ReadOnly)
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", d.Path, err)
		}
		dev, err := vz.NewVirtioBlockDeviceConfiguration(att)
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", d.Path, err)
		}
		if err := dev.SetBlockDeviceIdentifier(d.ID); err != nil && !errors.Is(err, vz.ErrUnsupportedOSVersion) {
			return nil, fmt.Errorf("disk %s: identifier %q: %w", d.Path, d.ID, err)
		}
		disks = append(disks, dev)
	}
	config.SetStorageDevicesVirtualMachineConfiguration(disks)

	serial, err := vz.NewFileSerialPortAttachment(plan.Console.Log, true)
	if err != nil {
		return nil, fmt.Errorf("console %s: %w", plan.Console.Log, err)
	}
	console, err := vz.NewVirtioConsoleDeviceSerialPortConfiguration(serial)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	config.SetSerialPortsVirtualMachineConfiguration([]*vz.VirtioConsoleDeviceSerialPortConfiguration{console})

	nic, err := networkDevice(plan.Network, netFile)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	config.SetNetworkDevicesVirtualMachineConfiguration([]*vz.VirtioNetworkDeviceConfiguration{nic})

	if plan.Entropy {
		rng, err := vz.NewVirtioEntropyDeviceConfiguration()
		if err != nil {
			return nil, fmt.Errorf("entropy: %w", err)
		}
		config.SetEntropyDevicesVirtualMachineConfiguration([]*vz.VirtioEntropyDeviceConfiguration{rng})
	}
	if plan.Balloon {
		balloon, err := vz.NewVirtioTraditionalMemoryBalloonDeviceConfiguration()
		if err != nil {
			return nil, fmt.Errorf("memory balloon: %w", err)
		}
		config.SetMemoryBalloonDevicesVirtualMachineConfiguration([]vz.MemoryBalloonDeviceConfiguration{balloon})
	}
	if err := addDisplay(config, plan.Display); err != nil {
		return nil, fmt.Errorf("display: %w", err)
	}
	if plan.Sound {
		snd, err := soundDevice()
		if err != nil {
			return nil, fmt.Errorf("sound: %w", err)
		}
		config.SetAudioDevicesVirtualMachineConfiguration([]vz.AudioDeviceConfiguration{snd})
	}
	if plan.Socket {
		sock, err := vz.NewVirtioSocketDeviceConfiguration()
		if err != nil {
			return nil, fmt.Errorf("virtio socket: %w", err)
		}
		config.SetSocketDevicesVirtualMachineConfiguration([]vz.SocketDeviceConfiguration{sock})
	}
	shares, err := directoryShares(plan)
	if err != nil {
		return nil, err
	}
	if len(shares) > 0 {
		config.SetDirectorySharingDevicesVirtualMachineConfiguration(shares)
	}
	if ok, err := config.Validate(); !ok || err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if plan.SaveTo != "" || plan.RestoreFrom != "" {
		if err := validateSaveRestore(config); err != nil {
			if plan.RestoreFrom != "" {
				return nil, fmt.Errorf("this VM's devices cannot be restored from saved state: %w (start it with --cold to discard the state and boot afresh)", err)
			}
			log.Warn("this VM's state cannot be saved", "err", err)
		}
	}
	return config, nil
}

// bootLoader is EFI with the VM's own variable store, created on first boot.
func bootLoader(b vzd.Boot) (*vz.EFIBootLoader, error) {
	var opts []vz.NewEFIVariableStoreOption
	if _, err := os.Stat(b.EFIVariableStore); errors.Is(err, os.ErrNotExist) {
		opts = append(opts, vz.WithCreatingEFIVariableStore())
	}
	store, err := vz.NewEFIVariableStore(b.EFIVariableStore, opts...)
	if err != nil {
		return nil, err
	}
	return vz.NewEFIBootLoader(vz.WithEFIVariableStore(store))
}

// machineIdentifier loads the VM's generic machine identifier, or makes and
// saves one on first boot: the guest sees the same machine every boot.
func machineIdentifier(path string) (*vz.GenericMachineIdentifier, error) {
	if _, err := os.Stat(path); err == nil {
		return vz.NewGenericMachineIdentifierWithDataPath(path)
	}
	id, err := vz.NewGenericMachineIdentifier()
	if err != nil {
		return nil, err
	}
	if err := store.WriteFileAtomic(path, id.DataRepresentation(), 0o600); err != nil {
		return nil, err
	}
	return id, nil
}

// networkDevice is virtio-net with the plan's MAC on the network's socket.
func networkDevice(n vzd.Network, netFile *os.File) (*vz.VirtioNetworkDeviceConfiguration, error) {
	att, err := vz.NewFileHandleNetworkDeviceAttachment(netFile)
	if err != nil {
		return nil, err
	}
	if n.MTU != 0 && n.MTU != 1500 {
		if err := att.SetMaximumTransmissionUnit(n.MTU); err != nil {
			return nil, fmt.Errorf("MTU %d: %w", n.MTU, err)
		}
	}
	nic, err := vz.NewVirtioNetworkDeviceConfiguration(att)
	if err != nil {
		return nil, err
	}
	hw, err := net.ParseMAC(n.MAC)
	if err != nil {
		return nil, err
	}
	mac, err := vz.NewMACAddress(hw)
	if err != nil {
		return nil, err
	}
	nic.SetMACAddress(mac)
	return nic, nil
}

// addDisplay adds a virtio-gpu scanout with a USB keyboard and pointer.
func addDisplay(config *vz.VirtualMachineConfiguration, d vzd.Display) error {
	gpu, err := vz.NewVirtioGraphicsDeviceConfiguration()
	if err != nil {
		return err
	}
	scanout, err := vz.NewVirtioGraphicsScanoutConfiguration(int64(d.Width), int64(d.Height))
	if err != nil {
		return err
	}
	gpu.SetScanouts(scanout)
	config.SetGraphicsDevicesVirtualMachineConfiguration([]vz.GraphicsDeviceConfiguration{gpu})
	kb, err := vz.NewUSBKeyboardConfiguration()
	if err != nil {
		return err
	}
	config.SetKeyboardsVirtualMachineConfiguration([]vz.KeyboardConfiguration{kb})
	pointer, err := vz.NewUSBScreenCoordinatePointingDeviceConfiguration()
	if err != nil {
		return err
	}
	config.SetPointingDevicesVirtualMachineConfiguration([]vz.PointingDeviceConfiguration{pointer})
	return nil
}

// soundDevice is virtio sound with one output stream to the Mac's default
// output; no input stream: the guest never hears the Mac's microphone.
func soundDevice() (*vz.VirtioSoundDeviceConfiguration, error) {
	dev, err := vz.NewVirtioSoundDeviceConfiguration()
	if err != nil {
		return nil, err
	}
	out, err := vz.NewVirtioSoundDeviceHostOutputStreamConfiguration()
	if err != nil {
		return nil, err
	}
	dev.SetStreams(out)
	return dev, nil
}

// directoryShares are the plan's virtiofs shares and the Rosetta share.
func directoryShares(plan vzd.Plan) ([]vz.DirectorySharingDeviceConfiguration, error) {
	var out []vz.DirectorySharingDeviceConfiguration
	for _, s := range plan.Shares {
		dir, err := vz.NewSharedDirectory(s.HostPath, s.ReadOnly)
		if err != nil {
			return nil, fmt.Errorf("share %s: %w", s.HostPath, err)
		}
		share, err := vz.NewSingleDirectoryShare(dir)
		if err != nil {
			return nil, fmt.Errorf("share %s: %w", s.HostPath, err)
		}
		dev, err := vz.NewVirtioFileSystemDeviceConfiguration(s.Tag)
		if err != nil {
			return nil, fmt.Errorf("share %s: tag %q: %w", s.HostPath, s.Tag, err)
		}
		dev.SetDirectoryShare(share)
		out = append(out, dev)
	}
	if plan.Rosetta != nil {
		dev, err := rosettaShare(plan.Rosetta.Tag)
		if err != nil {
			return nil, fmt.Errorf("rosetta: %w", err)
		}
		out = append(out, dev)
	}
	return out, nil
}

// probeVZ reports what the framework offers on this Mac.
func probeVZ() (vzd.HostCaps, error) {
	arch, err := vm.ParseArch(string(vm.HostArch()))
	if err != nil {
		return vzd.HostCaps{}, err
	}
	return vzd.HostCaps{
		MacOS:     vzd.MacOSVersion(),
		Arch:      arch,
		Supported: objc.Call[bool](objc.GetClass("VZVirtualMachine"), objc.Sel("isSupported")),
		Limits: vzd.Limits{
			MinCPUs:   vz.VirtualMachineConfigurationMinimumAllowedCPUCount(),
			MaxCPUs:   vz.VirtualMachineConfigurationMaximumAllowedCPUCount(),
			MinMemory: vz.VirtualMachineConfigurationMinimumAllowedMemorySize(),
			MaxMemory: vz.VirtualMachineConfigurationMaximumAllowedMemorySize(),
		},
		Rosetta:     rosettaAvailability(),
		SaveRestore: canSaveRestore(),
	}, nil
}
