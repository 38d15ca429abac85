package helper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	vzd "github.com/fvmhq/fvm/core/driver/vz"
)

// fakeHelperEnv makes the test binary act as fvm-vz (TestMain), with fakeVM
// for Virtualization.framework: the driver tests start it as a real process.
const fakeHelperEnv = "FVM_VZ_FAKE_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeHelperEnv) == "1" {
		os.Exit(mainWith(os.Args[1:], fakePlatform, os.Stdout, os.Stderr))
	}
	logrus.SetLevel(logrus.FatalLevel) // gvisor-tap-vsock's noise when a test closes a link
	os.Exit(m.Run())
}

// fakeNoSessionEnv makes the fake helper answer as one outside a login session.
const fakeNoSessionEnv = "FVM_VZ_FAKE_NO_SESSION"

var fakePlatform = platform{
	newVM: func(*mainLoop) NewVM { return newFakeVM },
	session: func() error {
		if os.Getenv(fakeNoSessionEnv) == "1" {
			return ErrNoLoginSession
		}
		return nil
	},
	probe: func() (vzd.HostCaps, error) {
		return vzd.HostCaps{MacOS: "14.5", Arch: "arm64", Supported: true, Rosetta: vzd.RosettaInstalled, SaveRestore: true,
			Limits: vzd.Limits{MinCPUs: 1, MaxCPUs: 8, MinMemory: 128 << 20, MaxMemory: 16 << 30}}, nil
	},
}

// fakeVM behaves like a vz VM: states in vz's order, a saved-state file,
// a window that leaves a marker, and a guest network stack whose port 22
// answers, so a forward through the real helper network reaches "the guest".
type fakeVM struct {
	plan   vzd.Plan
	states chan vzd.MachineState
	stop   func()

	mu    sync.Mutex
	state vzd.MachineState
}

// savedMarker is what fakeVM writes as its "saved state".
func savedMarker(name string) string { return "saved state of " + name }

// WindowMarker is the file a fake VM's ShowWindow writes in the VM's directory.
const windowMarker = "window-shown"

func newFakeVM(plan vzd.Plan, netFile *os.File, log *slog.Logger) (VM, error) {
	if strings.HasPrefix(plan.Name, "fail") {
		return nil, errors.New("fake: this Mac refuses the configuration")
	}
	stop, err := startFakeGuest(int(netFile.Fd()), plan.Network, 22)
	if err != nil {
		return nil, err
	}
	return &fakeVM{plan: plan, states: make(chan vzd.MachineState, 64), stop: stop, state: vzd.StateStopped}, nil
}

func (f *fakeVM) set(st vzd.MachineState) {
	f.mu.Lock()
	f.state = st
	f.mu.Unlock()
	f.states <- st
}

func (f *fakeVM) States() <-chan vzd.MachineState { return f.states }

func (f *fakeVM) State() vzd.MachineState { f.mu.Lock(); defer f.mu.Unlock(); return f.state }

func (f *fakeVM) Start(ctx context.Context) error {
	if f.plan.RestoreFrom != "" {
		f.set(vzd.StateRestoring)
		b, err := os.ReadFile(f.plan.RestoreFrom)
		if err != nil || string(b) != savedMarker(f.plan.Name) {
			f.set(vzd.StateStopped)
			return fmt.Errorf("fake: not a saved state: %q %v", b, err)
		}
		f.set(vzd.StatePaused)
		f.set(vzd.StateResuming)
		f.set(vzd.StateRunning)
		return nil
	}
	f.set(vzd.StateStarting)
	f.set(vzd.StateRunning)
	return nil
}

func (f *fakeVM) RequestStop() error {
	if f.State() != vzd.StateRunning {
		return fmt.Errorf("fake: the VM is %s", f.State())
	}
	go func() { // the guest powers off a little later
		f.set(vzd.StateStopping)
		time.Sleep(20 * time.Millisecond)
		f.stop()
		f.set(vzd.StateStopped)
	}()
	return nil
}

func (f *fakeVM) Stop() error {
	f.stop()
	f.set(vzd.StateStopped)
	return nil
}

func (f *fakeVM) Save(path string) error {
	if f.State() != vzd.StateRunning {
		return fmt.Errorf("fake: the VM is %s", f.State())
	}
	f.set(vzd.StatePausing)
	f.set(vzd.StatePaused)
	f.set(vzd.StateSaving)
	err := os.WriteFile(path, []byte(savedMarker(f.plan.Name)), 0o600)
	f.set(vzd.StatePaused)
	return err
}

func (f *fakeVM) Freeze(saveTo string, during func() error) (time.Duration, error) {
	if f.State() != vzd.StateRunning {
		return 0, fmt.Errorf("fake: the VM is %s", f.State())
	}
	t0 := time.Now()
	f.set(vzd.StatePaused)
	defer f.set(vzd.StateRunning)
	if saveTo != "" {
		if err := os.WriteFile(saveTo, []byte(savedMarker(f.plan.Name)), 0o600); err != nil {
			return 0, err
		}
	}
	return time.Since(t0), during()
}

func (f *fakeVM) ShowWindow(context.Context) (int, error) {
	return 1, os.WriteFile(filepath.Join(f.plan.Dir, windowMarker), []byte("shown\n"), 0o644)
}

// startFakeGuest is a guest network stack (gvisor's, standing in for Linux
// in a VM) on the VM's end of the link, with the plan's MAC and the fixed
// guest address, and TCP servers that answer "PORT:" + each line they read.
func startFakeGuest(fd int, n vzd.Network, ports ...uint16) (stop func(), err error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	unix.SetNonblock(dup, true)
	mac, _ := net.ParseMAC(n.MAC)
	ep, err := fdbased.New(&fdbased.Options{FDs: []int{dup}, MTU: uint32(n.MTU), EthernetHeader: true, Address: tcpip.LinkAddress(mac)})
	if err != nil {
		return nil, err
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	if terr := s.CreateNIC(1, ep); terr != nil {
		return nil, errors.New(terr.String())
	}
	guest := tcpip.AddrFrom4(netip.MustParseAddr(n.GuestIP).As4())
	if terr := s.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: guest.WithPrefix()}, stack.AddressProperties{}); terr != nil {
		return nil, errors.New(terr.String())
	}
	subnet, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{192, 168, 127, 0}), tcpip.MaskFromBytes([]byte{255, 255, 255, 0}))
	s.SetRouteTable([]tcpip.Route{{Destination: subnet, NIC: 1}})
	var lns []net.Listener
	for _, port := range ports {
		ln, err := gonet.ListenTCP(s, tcpip.FullAddress{NIC: 1, Addr: guest, Port: port}, ipv4.ProtocolNumber)
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					sc := bufio.NewScanner(c)
					for sc.Scan() {
						fmt.Fprintf(c, "%d:%s\n", port, sc.Text())
					}
				}()
			}
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, ln := range lns {
				ln.Close()
			}
			s.Close()
		})
	}, nil
}
