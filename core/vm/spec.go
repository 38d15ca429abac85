// Package vm defines what a virtual machine is: its spec, validation and states.
// It is shared by the CLI, the host and every driver, so it imports nothing of theirs.
package vm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MaxNameLen keeps per-VM socket paths under macOS's 104-byte sun_path limit.
const MaxNameLen = 32

// MaxDiskBytes is the largest disk fvm makes or accepts (--disk, and the
// virtual size an imported, pulled or built image declares): 64 TiB, far
// beyond any cloud image and below what QEMU and filesystems handle. The one
// place this limit is set.
const MaxDiskBytes int64 = 64 << 40

// Spec is the user's intent for a VM; it is saved in the instance directory.
type Spec struct {
	Name      string        `json:"name"`
	Image     string        `json:"image"`               // what the user asked for (name or path)
	BaseImage string        `json:"baseImage,omitempty"` // resolved cached base file (absolute)
	Arch      Arch          `json:"arch"`
	CPUs      int           `json:"cpus"`
	MemoryMiB int           `json:"memoryMiB"`
	DiskBytes int64         `json:"diskBytes"`
	User      string        `json:"user"`
	SSHKeys   []string      `json:"sshKeys,omitempty"` // authorized_keys lines
	Ports     []PortForward `json:"ports,omitempty"`
	Accel     string        `json:"accel,omitempty"`   // auto|kvm|hvf|tcg
	Backend   string        `json:"backend,omitempty"` // auto at create; then the host's choice, for life
	Created   time.Time     `json:"created"`
	// ISO is an installer ISO (absolute path, referenced in place, not copied): the VM
	// gets an empty disk of DiskBytes, the ISO as a CD-ROM and a display instead of an Image.
	ISO string `json:"iso,omitempty"`
	// AutoInstall runs Ubuntu's server installer unattended from an autoinstall seed.
	AutoInstall bool `json:"autoInstall,omitempty"`
	// Blank: made with neither an image nor an ISO (`fvm create --name X`): an
	// empty disk of DiskBytes, on which the firmware finds nothing to boot
	// until an installer is attached (`fvm start X --iso FILE`, which sets ISO).
	Blank bool `json:"blank,omitempty"`
	// Mounts share host directories into the guest, mounted at every boot.
	Mounts []Mount `json:"mounts,omitempty"`
	// NoAutoPorts turns off automatic forwards of the ports the guest listens on.
	NoAutoPorts bool `json:"noAutoPorts,omitempty"`
	// Warm is the warm snapshot (a directory the host made) this VM was cloned
	// from: its disk is an overlay on the snapshot's, and its first start
	// restores the snapshot's memory. Set by the host only.
	Warm string `json:"warm,omitempty"`
	// Rosetta shares Apple's Rosetta into an arm64 guest (vz on Apple silicon),
	// so it runs x86-64 Linux programs; the seed mounts it and registers binfmt.
	Rosetta bool `json:"rosetta,omitempty"`
	// NoSound leaves out the sound card a VM with a display has (--sound=false).
	NoSound bool `json:"noSound,omitempty"`
	// On names the backend's host the VM runs on (a libvirt.hosts name, or ""
	// for libvirt.uri's): asked with --on, else chosen by the driver at
	// create (the most free memory), then kept.
	On string `json:"on,omitempty"`
}

// Arch is a guest CPU architecture in Go's naming.
type Arch string

const (
	AMD64 Arch = "amd64"
	ARM64 Arch = "arm64"
)

// ParseArch accepts Go names and the usual aliases (x86_64, aarch64).
func ParseArch(s string) (Arch, error) {
	switch strings.ToLower(s) {
	case "amd64", "x86_64", "x64":
		return AMD64, nil
	case "arm64", "aarch64":
		return ARM64, nil
	}
	return "", fmt.Errorf("unknown architecture %q: use amd64 or arm64", s)
}

// IsArch reports whether s names an architecture (used to tell ARCH from NAME in `fvm run`).
func IsArch(s string) bool { _, err := ParseArch(s); return err == nil }

// foreignArches are architectures fvm does not run: in the ARCH place of
// `fvm run IMAGE [ARCH] [NAME]` they are a mistake, not a VM name.
var foreignArches = map[string]bool{
	"i386": true, "i686": true, "386": true, "x86": true, "armhf": true, "armel": true, "arm": true,
	"armv7": true, "armv7l": true, "ppc64": true, "ppc64le": true, "ppc64el": true, "s390x": true,
	"riscv64": true, "mips64el": true, "mipsel": true, "loong64": true, "loongarch64": true,
}

// IsForeignArch reports whether s names an architecture fvm cannot run.
func IsForeignArch(s string) bool { return foreignArches[strings.ToLower(s)] }

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// ValidateName checks a VM name: lowercase letters, digits and inner hyphens, at most MaxNameLen.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("vm name is empty: give a name like web1")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("vm name %q is too long (%d characters): use at most %d", name, len(name), MaxNameLen)
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("vm name %q is invalid: use lowercase letters, digits and hyphens, starting and ending with a letter or digit", name)
	}
	return nil
}

// Validate checks a spec for everything that can be checked without a host.
func (s *Spec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if err := s.validateSource(); err != nil {
		return err
	}
	if _, err := ParseArch(string(s.Arch)); err != nil {
		return fmt.Errorf("vm %q: %w", s.Name, err)
	}
	if s.Rosetta && s.Arch != ARM64 {
		return fmt.Errorf("vm %q: %w", s.Name, errRosettaArch(s.Arch))
	}
	return s.ValidateSettings()
}

// ValidateSettings checks the sizes, user, accel and ports: what a client can check
// before the host has resolved the image and picked a name.
func (s *Spec) ValidateSettings() error {
	if s.CPUs < 1 || s.CPUs > 256 {
		return fmt.Errorf("--cpus %d is out of range: use 1 to 256", s.CPUs)
	}
	if s.MemoryMiB < 128 {
		return fmt.Errorf("--memory %dMiB is too small: use at least 128M (e.g. 2G)", s.MemoryMiB)
	}
	if s.DiskBytes < 1<<30 {
		return fmt.Errorf("--disk %d bytes is too small: use at least 1G (e.g. 20G)", s.DiskBytes)
	}
	if s.DiskBytes > MaxDiskBytes {
		return fmt.Errorf("--disk %s is larger than fvm's limit of %s: use a smaller size", FormatSize(s.DiskBytes), FormatSize(MaxDiskBytes))
	}
	if err := ValidateUser(s.User); err != nil {
		return err
	}
	if s.Rosetta && s.Arch != "" && s.Arch != ARM64 { // an ARCH given: refused before any pull
		return errRosettaArch(s.Arch)
	}
	switch s.Accel {
	case "", Auto, "kvm", "hvf", "tcg":
	default:
		return fmt.Errorf("--accel %q is unknown: use auto, kvm, hvf or tcg", s.Accel)
	}
	guests := map[string]bool{}
	for _, m := range s.Mounts {
		if err := m.Validate(); err != nil {
			return err
		}
		if guests[m.GuestPath] {
			return fmt.Errorf("-v: two shares are mounted at %s: give each its own guest path", m.GuestPath)
		}
		guests[m.GuestPath] = true
	}
	seen := map[string]bool{}
	for _, p := range s.Ports {
		key := p.HostIP.String() + ":" + strconv.Itoa(int(p.HostPort))
		if seen[key] {
			return fmt.Errorf("host port %s is forwarded twice", key)
		}
		seen[key] = true
	}
	return nil
}

// validateSource checks that the VM boots from exactly one of an image or an installer ISO.
func (s *Spec) validateSource() error {
	switch {
	case s.ISO != "" && s.Image != "":
		return fmt.Errorf("vm %q: both an image (%q) and --iso given: give one", s.Name, s.Image)
	case s.ISO != "" && !filepath.IsAbs(s.ISO):
		return fmt.Errorf("vm %q: --iso %q is not an absolute path", s.Name, s.ISO)
	case s.AutoInstall && s.ISO == "":
		return fmt.Errorf("vm %q: --auto-install needs an installer: add --iso PATH (an Ubuntu server ISO)", s.Name)
	case s.Blank && s.Image != "":
		return fmt.Errorf("vm %q: a blank VM has no image (%s given): drop one of them", s.Name, s.Image)
	case s.ISO == "" && s.Image == "" && !s.Blank:
		return fmt.Errorf("vm %q: no image given: name an image (see `fvm images`), a path to a qcow2/raw file, or --iso PATH", s.Name)
	}
	return nil
}

func errRosettaArch(a Arch) error {
	return fmt.Errorf("--rosetta runs x86-64 programs in arm64 guests, and this VM is %s: drop --rosetta, or pick an arm64 image", a)
}

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// ValidateUser checks a guest login name.
func ValidateUser(u string) error {
	if !userRE.MatchString(u) || u == "root" {
		return fmt.Errorf("user %q is invalid: use a lowercase login name other than root (e.g. %s)", u, Defaults.User)
	}
	return nil
}

// PortForward forwards HostIP:HostPort on the host to GuestPort in the guest (TCP).
type PortForward struct {
	HostIP    netip.Addr `json:"hostIP"`
	HostPort  uint16     `json:"hostPort"`
	GuestPort uint16     `json:"guestPort"`
}

func (p PortForward) String() string {
	return fmt.Sprintf("%s->%d/tcp", netip.AddrPortFrom(p.HostIP, p.HostPort), p.GuestPort)
}

// ParsePortForward parses docker-style [HOSTIP:]HOSTPORT:GUESTPORT; the host IP defaults to 127.0.0.1.
func ParsePortForward(s string) (PortForward, error) {
	bad := func(why string) (PortForward, error) {
		return PortForward{}, fmt.Errorf("port forward %q: %s: use [HOSTIP:]HOSTPORT:GUESTPORT, e.g. 8080:80", s, why)
	}
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return bad("missing guest port")
	}
	host, guest := s[:i], s[i+1:]
	pf := PortForward{HostIP: netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	if j := strings.LastIndex(host, ":"); j >= 0 {
		ipStr := strings.Trim(host[:j], "[]")
		ip, err := netip.ParseAddr(ipStr)
		if err != nil {
			return bad("invalid host IP " + strconv.Quote(ipStr))
		}
		pf.HostIP = ip.Unmap()
		host = host[j+1:]
	}
	hp, err := parsePort(host)
	if err != nil {
		return bad("host port: " + err.Error())
	}
	gp, err := parsePort(guest)
	if err != nil {
		return bad("guest port: " + err.Error())
	}
	pf.HostPort, pf.GuestPort = hp, gp
	return pf, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number 1-65535", s)
	}
	return uint16(n), nil
}

// ParseSize parses sizes with a binary unit: 512M, 2G, 20GiB, 1.5G, 4096B. A
// number without a unit is GiB, as the tools fvm replaces (and Lima) read
// `--memory 4` and `--disk 20`. A bare number of 1024 or more is refused: it is
// MiB written without its unit (memory: 4096), never thousands of GiB.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(t, "IB")
	unit := t != strings.TrimSuffix(t, "B") // "4096B": bytes, explicitly
	t = strings.TrimSuffix(t, "B")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t, unit = t[:len(t)-1], true
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<52 || strings.ContainsAny(t, "eExXpP_") || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("size %q is invalid: use a number with K, M, G or T (e.g. 2G)", s)
	}
	if !unit {
		if f >= maxBareGiB {
			return 0, fmt.Errorf("size %q has no unit, and a bare number is GiB (%s GiB?): write %sM for MiB, or add the unit you mean", s, t, t)
		}
		mult = 1 << 30
	}
	return int64(f * float64(mult)), nil
}

// maxBareGiB bounds a size without a unit (GiB): more is a MiB figure missing its M.
const maxBareGiB = 1024

// FormatSize renders bytes compactly in binary units (2G, 512M, 1.5G).
func FormatSize(n int64) string {
	units := []string{"", "K", "M", "G", "T"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strings.TrimSuffix(strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), "0"), ".") + units[i]
}

var (
	adjectives = []string{"brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucky", "merry", "nimble", "proud", "quick", "quiet", "sunny", "swift", "tidy", "witty", "bold", "bright"}
	nouns      = []string{"otter", "falcon", "badger", "heron", "lynx", "panda", "koala", "raven", "tiger", "whale", "fox", "owl", "yak", "gecko", "lemur", "bison", "crane", "finch", "moose", "seal"}
)

// GenerateName returns a random adjective-noun name; taken reports names already in use.
func GenerateName(taken func(string) bool) string {
	pick := func(list []string) string {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
		return list[n.Int64()]
	}
	for i := 0; ; i++ {
		name := pick(adjectives) + "-" + pick(nouns)
		if i > 20 {
			name += "-" + strconv.Itoa(i)
		}
		if taken == nil || !taken(name) {
			return name
		}
	}
}
