package vm

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Mount shares a host directory into the guest.
type Mount struct {
	HostPath  string `json:"hostPath"`  // absolute, a directory
	GuestPath string `json:"guestPath"` // absolute
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

func (m Mount) String() string {
	s := m.HostPath + ":" + m.GuestPath
	if m.ReadOnly {
		s += ":ro"
	}
	return s
}

// ParseMount reads -v HOST_PATH[:GUEST_PATH][:ro|:rw]; the guest path defaults
// to the host's (as Lima does). The host path is made absolute against cwd;
// whether it exists is for the caller to check.
func ParseMount(s, cwd string) (Mount, error) {
	bad := func(why string) (Mount, error) {
		return Mount{}, fmt.Errorf("-v %q: %s: use HOST_PATH[:GUEST_PATH][:ro], e.g. -v ~/src:/src:ro", s, why)
	}
	parts := strings.Split(s, ":")
	var m Mount
	switch last := parts[len(parts)-1]; {
	case len(parts) > 1 && (last == "ro" || last == "rw"):
		m.ReadOnly = last == "ro"
		parts = parts[:len(parts)-1]
	}
	switch len(parts) {
	case 1:
		m.HostPath = parts[0]
	case 2:
		m.HostPath, m.GuestPath = parts[0], parts[1]
	default:
		return bad("too many colons (paths with a colon cannot be shared)")
	}
	if m.HostPath == "" {
		return bad("no host path")
	}
	if !filepath.IsAbs(m.HostPath) {
		m.HostPath = filepath.Join(cwd, m.HostPath)
	}
	m.HostPath = filepath.Clean(m.HostPath)
	if m.GuestPath == "" {
		m.GuestPath = filepath.ToSlash(m.HostPath)
	}
	if err := m.Validate(); err != nil {
		return bad(err.Error())
	}
	return m, nil
}

// Validate checks the paths of a mount.
func (m Mount) Validate() error {
	if !filepath.IsAbs(m.HostPath) {
		return fmt.Errorf("share %q: the host path is not absolute", m)
	}
	if !path.IsAbs(m.GuestPath) || strings.ContainsAny(m.GuestPath, " \t\n'\"\\$`") {
		return fmt.Errorf("share %q: the guest path must be absolute, without spaces, quotes or $", m)
	}
	switch path.Clean(m.GuestPath) {
	case "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/run", "/sbin", "/sys", "/usr", "/var":
		return fmt.Errorf("share %q: mounting over %s would break the guest: pick another guest path", m, path.Clean(m.GuestPath))
	}
	return nil
}

// ShareTag names the i-th mount's device for the guest (virtiofs tag, 9p
// mount_tag): the driver and the seed use the same rule.
func ShareTag(i int) string { return fmt.Sprintf("fvm%d", i) }
