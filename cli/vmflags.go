package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fvmhq/fvm/core/config"
	"github.com/fvmhq/fvm/core/sshx"
	"github.com/fvmhq/fvm/core/vm"
)

// vmFlags are the flags shared by `run` and `create`. The settings (cpus,
// memory, disk, user, accel, backend) are read from the flag set by
// config.VMSettings, which also consults FVM_* variables and the config file.
type vmFlags struct {
	name    string
	sshKeys []string
	ports   []string
	cold    bool // boot from the image even when a warm snapshot could serve
	noAuto  bool // no automatic port forwards
	mounts  []string
	rosetta bool
	sound   bool
	on      string // a libvirt host (libvirt.hosts)
	// create only (install.go)
	iso         string
	autoInstall bool
}

func (f *vmFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "VM name (lowercase letters, digits, hyphens); generated when omitted")
	d := vm.Defaults // the one table of defaults; FVM_<FLAG> and the config file override it
	fl.String(config.KeyCPUs, strconv.Itoa(d.CPUs), "virtual CPUs (also --cpu)")
	fl.String(config.KeyMemory, vm.FormatSize(int64(d.MemoryMiB)<<20), "memory: 512M, 2G, or a number of GiB (4)")
	fl.String(config.KeyDisk, vm.FormatSize(d.DiskBytes), "disk size: 20G, or a number of GiB (20); the root filesystem grows to fill it")
	fl.String(config.KeyUser, d.User, "login user created in the guest (passwordless sudo)")
	fl.String(config.KeyAccel, d.Accel, "acceleration: auto, kvm, hvf or tcg")
	fl.String(config.KeyBackend, d.Backend, backendUsage)
	fl.StringArrayVar(&f.sshKeys, "ssh-key", nil, "public key file to authorize (repeatable; default: ~/.ssh/*.pub plus fvm's own key)")
	fl.StringArrayVarP(&f.ports, "publish", "p", nil, "forward a host port: [HOSTIP:]HOSTPORT:GUESTPORT (host IP defaults to 127.0.0.1)")
	fl.StringArrayVarP(&f.mounts, "mount", "v", nil, "share a directory of the VM's host (this machine, or the remote one of --host/--context, as docker -v): HOST_PATH[:GUEST_PATH][:ro] (repeatable; the guest path defaults to the host's; :ro is enforced by the host)")
	fl.BoolVar(&f.noAuto, "no-auto-ports", false, "do not forward the ports the guest listens on (by default each one ≥ 1024 appears on 127.0.0.1; see `fvm ports`)")
	fl.BoolVar(&f.cold, "cold", false, "boot from the image, not from its warm snapshot (see `fvm image warm`)")
	fl.StringVar(&f.on, "on", "", "the libvirt host to run on (a name in libvirt.hosts; default: the one with the most free memory)")
	fl.BoolVar(&f.rosetta, "rosetta", false, "run x86-64 Linux programs in an arm64 guest through Apple's Rosetta (vz on Apple silicon)")
	fl.BoolVar(&f.sound, "sound", true, "give the VM a sound card, played on this host (--sound=false: none)")
	fl.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "cpu" { // as in the tools fvm replaces
			name = config.KeyCPUs
		}
		return pflag.NormalizedName(name)
	})
}

// spec builds a VM spec from positional IMAGE [ARCH] [NAME] and the flags.
func (f *vmFlags) spec(a *app, cmd *cobra.Command, args []string) (vm.Spec, error) {
	var s vm.Spec
	var rest []string
	if f.iso != "" || f.autoInstall { // from an installer ISO: [ARCH] [NAME], no image
		var err error
		if s, rest, err = f.installSource(args); err != nil {
			return s, err
		}
	} else if len(args) == 0 && f.name != "" && cmd.Name() == "create" { // a blank VM (blank.go)
		s = vm.Spec{Blank: true, Name: f.name}
	} else {
		if len(args) == 0 {
			return vm.Spec{}, fmt.Errorf("no image given: try `fvm %s debian-local` (see `fvm images`)%s", cmd.Name(), blankHint(cmd.Name()))
		}
		s, rest = vm.Spec{Image: args[0], Name: f.name}, args[1:]
	}
	if len(rest) > 0 && vm.IsForeignArch(rest[0]) {
		return s, fmt.Errorf("architecture %q is not supported: fvm runs amd64 and arm64 images (for a VM named %q, use --name %s)", rest[0], rest[0], rest[0])
	}
	if len(rest) > 0 && vm.IsArch(rest[0]) {
		arch, _ := vm.ParseArch(rest[0])
		s.Arch = arch
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if s.Name != "" && s.Name != rest[0] {
			return s, fmt.Errorf("two names given (%q and --name %q): give one", rest[0], s.Name)
		}
		s.Name = rest[0]
		rest = rest[1:]
	}
	if len(rest) > 0 {
		return s, fmt.Errorf("unexpected argument %q: usage is IMAGE [ARCH] [NAME]; put a command after --", rest[0])
	}
	if s.Name != "" {
		if err := vm.ValidateName(s.Name); err != nil {
			return s, err
		}
	}
	if s.Image != "" && looksLikePath(s.Image) {
		abs, err := filepath.Abs(s.Image)
		if err != nil {
			return s, err
		}
		if _, err := os.Stat(abs); err != nil {
			return s, fmt.Errorf("image file %q: %w", s.Image, err)
		}
		s.Image = abs
	}
	s.On = f.on
	settings, err := config.VMSettings(a.cfg, cmd.Flags())
	if err != nil {
		return s, err
	}
	settings.Apply(&s)
	s.NoAutoPorts = f.noAuto
	cwd, _ := os.Getwd()
	for _, v := range f.mounts {
		if h := a.remoteHost(); h != nil && !strings.HasPrefix(v, "/") {
			// A relative or ~ path would be this machine's; -v names the VM host's.
			return s, fmt.Errorf("-v %s: give an absolute path on %s: -v names a directory of the VM's host, not of this machine", v, h.Name())
		}
		if strings.HasPrefix(v, "~/") {
			if home, err := os.UserHomeDir(); err == nil {
				v = filepath.Join(home, v[2:])
			}
		}
		m, err := vm.ParseMount(v, cwd)
		if err != nil {
			return s, err
		}
		s.Mounts = append(s.Mounts, m) // the VM's host checks the directory exists there
	}
	s.Rosetta = f.rosetta
	s.NoSound = !f.sound
	for _, p := range f.ports {
		pf, err := vm.ParsePortForward(p)
		if err != nil {
			return s, err
		}
		if w := exposedWarning(pf); w != "" {
			fmt.Fprintln(a.errOut, w)
		}
		s.Ports = append(s.Ports, pf)
	}
	if len(f.sshKeys) > 0 {
		for _, path := range f.sshKeys {
			b, err := os.ReadFile(path)
			if err != nil {
				return s, fmt.Errorf("--ssh-key %q: %w", path, err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					s.SSHKeys = append(s.SSHKeys, line)
				}
			}
		}
	} else if home, err := os.UserHomeDir(); err == nil {
		s.SSHKeys = sshx.UserPublicKeys(home)
	}
	return s, s.ValidateSettings()
}

// exposedWarning says, for a port forward on a host address other than
// loopback, who can reach it: docker does the same silently, fvm says it.
func exposedWarning(pf vm.PortForward) string {
	if pf.HostIP.IsLoopback() {
		return ""
	}
	where := "every network interface of this machine"
	if !pf.HostIP.IsUnspecified() {
		where = pf.HostIP.String()
	}
	return fmt.Sprintf("WARNING: -p %s:%d:%d publishes the VM's port %d on %s: other machines on your network can reach it; use -p %d:%d to keep it on this machine (127.0.0.1)",
		pf.HostIP, pf.HostPort, pf.GuestPort, pf.GuestPort, where, pf.HostPort, pf.GuestPort)
}

func looksLikePath(s string) bool {
	if isURL(s) {
		return false // imported by URL (pull.go)
	}
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") ||
		strings.HasPrefix(s, "~") || strings.HasSuffix(s, ".qcow2") || strings.HasSuffix(s, ".img") || strings.HasSuffix(s, ".raw")
}
