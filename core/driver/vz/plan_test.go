package vz

import (
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/vm"
)

var update = flag.Bool("update", false, "rewrite the golden device plans in testdata/")

// appleSilicon are limits like those of an 8-core, 16 GiB Apple silicon Mac.
var appleSilicon = Limits{MinCPUs: 1, MaxCPUs: 8, MinMemory: 128 << 20, MaxMemory: 16 << 30}

func baseSpec() *vm.Spec {
	return &vm.Spec{
		Name: "web1", Image: "debian", Arch: vm.ARM64, CPUs: 2, MemoryMiB: 2048, DiskBytes: 20 << 30,
		User: "fvm", Backend: "vz", Created: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func input(s *vm.Spec) PlanInput {
	return PlanInput{Spec: s, Dir: "/vms/" + s.Name, HostArch: vm.ARM64, Limits: appleSilicon,
		SSHPort: 50022, Seed: true, CanSave: true, Rosetta: RosettaInstalled}
}

// TestPlanGolden pins the device plan of several specs: cpus and memory,
// disk and seed, ports, display, Rosetta, shares, and resuming saved state.
func TestPlanGolden(t *testing.T) {
	cases := map[string]func() PlanInput{
		"default": func() PlanInput { return input(baseSpec()) },
		"big-with-ports": func() PlanInput {
			s := baseSpec()
			s.CPUs, s.MemoryMiB = 8, 16<<10
			s.Ports = []vm.PortForward{
				{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, GuestPort: 80},
				{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 5432, GuestPort: 5432},
			}
			return input(s)
		},
		"no-seed-no-save": func() PlanInput {
			in := input(baseSpec())
			in.Seed, in.CanSave = false, false
			return in
		},
		"rosetta-and-shares": func() PlanInput {
			s := baseSpec()
			s.Rosetta = true
			s.Mounts = []vm.Mount{{HostPath: "/Users/me/src", GuestPath: "/src"}, {HostPath: "/Users/me/data", GuestPath: "/data", ReadOnly: true}}
			return input(s)
		},
		"resume": func() PlanInput {
			in := input(baseSpec())
			in.Restore = true
			return in
		},
		"no-sound": func() PlanInput {
			s := baseSpec()
			s.NoSound = true
			return input(s)
		},
		"intel-mac": func() PlanInput {
			s := baseSpec()
			s.Arch = vm.AMD64
			in := input(s)
			in.HostArch, in.CanSave, in.Rosetta = vm.AMD64, false, RosettaUnsupported
			return in
		},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := BuildPlan(in())
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "plan-"+name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("plan differs from %s (go test -update rewrites it):\ngot:\n%s", golden, got)
			}
			// Every plan has what the issue asks of a vz VM.
			if p.Display.Width != 1280 || p.Display.Height != 800 || p.Display.Keyboard != "usb" || p.Display.Pointer == "" {
				t.Errorf("display %+v: want a 1280x800 scanout with USB keyboard and pointer", p.Display)
			}
			if !p.Entropy || !p.Balloon || !p.Socket || p.Disks[0].ReadOnly || p.Network.Forwards[0].GuestPort != 22 {
				t.Errorf("plan misses a device: %+v", p)
			}
			if in().Seed && (len(p.Disks) != 2 || !p.Disks[1].ReadOnly || !strings.HasSuffix(p.Disks[1].Path, "seed.iso")) {
				t.Errorf("seed must be the second disk, read-only: %+v", p.Disks)
			}
		})
	}
}

func TestPlanRefuses(t *testing.T) {
	cases := []struct {
		name        string
		edit        func(*PlanInput)
		want        string
		unsupported bool
	}{
		{"foreign arch", func(in *PlanInput) { in.Spec.Arch = vm.AMD64 }, "vz runs arm64 guests on this Mac, not amd64: use --backend qemu", true},
		{"too many cpus", func(in *PlanInput) { in.Spec.CPUs = 12 }, "--cpus 12 is more than vz allows on this Mac (8): use --cpus 8 or fewer", false},
		{"too much memory", func(in *PlanInput) { in.Spec.MemoryMiB = 32 << 10 }, "--memory 32G is more than vz allows on this Mac (16G): use --memory 16G or less", false},
		{"too little memory", func(in *PlanInput) { in.Limits.MinMemory = 512 << 20; in.Spec.MemoryMiB = 256 }, "--memory 256M is less than vz allows (512M): use --memory 512M or more", false},
		{"rosetta on amd64 guest", func(in *PlanInput) {
			in.Spec.Arch, in.HostArch, in.Spec.Rosetta = vm.AMD64, vm.AMD64, true
		}, "--rosetta runs x86-64 programs in arm64 guests; this VM is amd64: drop --rosetta", false},
		{"rosetta not installed", func(in *PlanInput) { in.Spec.Rosetta, in.Rosetta = true, RosettaNotInstalled }, "softwareupdate --install-rosetta", false},
		{"relative share", func(in *PlanInput) { in.Spec.Mounts = []vm.Mount{{HostPath: "rel", GuestPath: "/x"}} }, "is not an absolute path", false},
		{"restore without save", func(in *PlanInput) { in.Restore, in.CanSave = true, false }, "--cold", false},
		{"relative dir", func(in *PlanInput) { in.Dir = "vms/web1" }, "not absolute", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := input(baseSpec())
			c.edit(&in)
			_, err := BuildPlan(in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), `vm "web1": `) {
				t.Errorf("error %q does not name the VM", err)
			}
			if got := errors.Is(err, driver.ErrUnsupported); got != c.unsupported {
				t.Errorf("errors.Is(ErrUnsupported) = %v, want %v", got, c.unsupported)
			}
		})
	}
}
