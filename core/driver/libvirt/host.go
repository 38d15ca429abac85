package libvirt

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/fvmhq/fvm/core/vm"
)

// facts are what fvm learns of a libvirt host once per use.
type facts struct {
	LibVersion string // libvirt's, e.g. 9.0.0
	Hypervisor string // e.g. QEMU 7.2.0
	Hostname   string
	Arch       string   // libvirt's name of the guest arch asked for
	Types      []string // domain types offered for it: kvm and/or qemu
	FreeBytes  uint64   // the node's free memory (libvirt's node statistics)
}

// libvirtArch is libvirt's name of a guest arch.
func libvirtArch(a vm.Arch) string {
	switch a {
	case vm.ARM64:
		return "aarch64"
	case "":
		return libvirtArch(vm.HostArch())
	}
	return "x86_64"
}

// hostFacts asks the daemon c for its versions, what it runs of arch and its
// free memory. An unreachable daemon, or one without QEMU for arch, is an error
// naming the URI and the fix.
func hostFacts(ctx context.Context, c *client, arch vm.Arch) (facts, error) {
	l, err := c.get(ctx)
	if err != nil {
		return facts{}, err
	}
	var f facts
	if v, err := l.ConnectGetLibVersion(); err == nil {
		f.LibVersion = versionText(v)
	}
	if v, err := l.ConnectGetVersion(); err == nil {
		f.Hypervisor = "QEMU " + versionText(v)
	}
	f.Hostname, _ = l.ConnectGetHostname()
	f.FreeBytes, _ = l.NodeGetFreeMemory()
	capsXML, err := l.ConnectGetCapabilities()
	if err != nil {
		return f, fmt.Errorf("libvirt %s: capabilities: %w", c.t.uri, err)
	}
	var caps libvirtxml.Caps
	if err := caps.Unmarshal(capsXML); err != nil {
		return f, fmt.Errorf("libvirt %s: capabilities: %w", c.t.uri, err)
	}
	f.Arch = libvirtArch(arch)
	f.Types = domainTypes(&caps, f.Arch)
	if len(f.Types) == 0 {
		return f, fmt.Errorf("libvirt %s runs no %s guests: install QEMU for %s there (Debian: qemu-system-%s) and restart libvirtd", c.t.uri, f.Arch, f.Arch, map[string]string{"x86_64": "x86", "aarch64": "arm"}[f.Arch])
	}
	return f, nil
}

// domainTypes are the domain types the host offers for arch's hvm guests.
func domainTypes(caps *libvirtxml.Caps, arch string) []string {
	seen := map[string]bool{}
	for _, g := range caps.Guests {
		if g.OSType != "hvm" || g.Arch.Name != arch {
			continue
		}
		for _, d := range g.Arch.Domains {
			seen[d.Type] = true
		}
	}
	var out []string
	for t := range seen {
		if t == "kvm" || t == "qemu" {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// domainType picks kvm where the host offers it and the spec allows it,
// qemu (TCG) otherwise, with a notice for the user when TCG is chosen.
// localWhy (a daemon on this machine whose KVM cannot boot a standard
// guest, see Options.LocalKVM) makes auto pick TCG though libvirt offers KVM.
func domainType(types []string, accel, localWhy string) (typ, notice string, err error) {
	hasKVM := false
	for _, t := range types {
		hasKVM = hasKVM || t == "kvm"
	}
	switch strings.ToLower(accel) {
	case "kvm":
		if !hasKVM {
			return "", "", fmt.Errorf("--accel kvm: this libvirt host offers no KVM for the guest's arch: drop --accel or use tcg")
		}
		return "kvm", "", nil
	case "tcg":
		return "qemu", "", nil
	case "", "auto":
		if hasKVM && localWhy == "" {
			return "kvm", "", nil
		}
		if hasKVM {
			return "qemu", "tcg: software emulation (slow): " + localWhy, nil
		}
		return "qemu", noKVMNotice, nil
	}
	return "", "", fmt.Errorf("--accel %s: the libvirt backend takes auto, kvm or tcg", accel)
}

const noKVMNotice = "tcg: the libvirt host offers no KVM for this arch: software emulation (slow)"

// localURI says whether uri reaches a libvirt daemon on this machine, whose
// KVM LocalKVM can judge: no host in it and no remote transport, or a
// loopback host (qemu+ssh://root@127.0.0.1/system is this machine's too).
func localURI(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	if h := u.Hostname(); h != "" {
		ip := net.ParseIP(h)
		return h == "localhost" || (ip != nil && ip.IsLoopback())
	}
	_, transport, _ := strings.Cut(u.Scheme, "+")
	return transport == "" || transport == "unix"
}

func versionText(v uint64) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}
