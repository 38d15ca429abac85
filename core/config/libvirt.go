package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/viper"
)

// Settings of the libvirt backend, in the config file or FVM_LIBVIRT_*:
//
//	libvirt:
//	  uri: qemu+ssh://me@server/system   # FVM_LIBVIRT_URI; default qemu:///system for root, qemu:///session otherwise
//	  pool: fvm                          # FVM_LIBVIRT_POOL: fvm's storage pool on each libvirt host
//	  pool_path: /srv/fvm                # FVM_LIBVIRT_POOL_PATH: where a new pool's directory goes
//	  hosts:                             # several libvirt hosts: name → URI (`fvm run --on NAME`)
//	    big: qemu+ssh://me@big/system
//	    small: qemu+ssh://me@small/system
const (
	KeyLibvirtURI      = "libvirt.uri"
	KeyLibvirtPool     = "libvirt.pool"
	KeyLibvirtPoolPath = "libvirt.pool_path"
	KeyLibvirtHosts    = "libvirt.hosts"
)

// LibvirtHost is one libvirt daemon fvm may place VMs on.
type LibvirtHost struct {
	Name string // "" for the one of libvirt.uri
	URI  string
}

// Libvirt is the libvirt backend's configuration.
type Libvirt struct {
	// Hosts are the daemons VMs may go to, sorted by name; libvirt.uri (or
	// the default URI) is the one named "" unless libvirt.hosts is set and
	// libvirt.uri is not.
	Hosts    []LibvirtHost
	Pool     string
	PoolPath string
}

// Host returns the host named name (--on).
func (l Libvirt) Host(name string) (LibvirtHost, error) {
	var names []string
	for _, h := range l.Hosts {
		if h.Name == name {
			return h, nil
		}
		if h.Name != "" {
			names = append(names, h.Name)
		}
	}
	if len(names) == 0 {
		return LibvirtHost{}, fmt.Errorf("--on %s: no libvirt host has that name: name your hosts in libvirt.hosts (name: URI)", name)
	}
	return LibvirtHost{}, fmt.Errorf("--on %s: no libvirt host has that name: libvirt.hosts has %s", name, strings.Join(names, ", "))
}

// LibvirtSettings resolves the libvirt settings; defaultURI is used when none is
// given. A bad value names where it came from.
func LibvirtSettings(v *viper.Viper, defaultURI string) (Libvirt, error) {
	out := Libvirt{Pool: "fvm"}
	if val, from, ok := lookup(v, nil, KeyLibvirtPool); ok {
		s, err := text(val)
		if err == nil && strings.TrimSpace(s) == "" {
			err = fmt.Errorf("is empty: name a storage pool")
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", from, err)
		}
		out.Pool = strings.TrimSpace(s)
	}
	if val, from, ok := lookup(v, nil, KeyLibvirtPoolPath); ok {
		s, err := text(val)
		if err == nil && !strings.HasPrefix(s, "/") {
			err = fmt.Errorf("%q is not an absolute path (on the libvirt host)", s)
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", from, err)
		}
		out.PoolPath = s
	}
	if v != nil && v.InConfig(KeyLibvirtHosts) {
		hosts, ok := v.Get(KeyLibvirtHosts).(map[string]any)
		if !ok {
			return out, fmt.Errorf("%s in %s: want a map of name: URI", KeyLibvirtHosts, v.ConfigFileUsed())
		}
		for name, u := range hosts {
			s, ok := u.(string)
			if !ok || s == "" || name == "" {
				return out, fmt.Errorf("%s.%s in %s: want a URI such as qemu+ssh://user@server/system", KeyLibvirtHosts, name, v.ConfigFileUsed())
			}
			out.Hosts = append(out.Hosts, LibvirtHost{Name: name, URI: s})
		}
		sort.Slice(out.Hosts, func(i, j int) bool { return out.Hosts[i].Name < out.Hosts[j].Name })
	}
	val, from, ok := lookup(v, nil, KeyLibvirtURI)
	switch {
	case ok:
		s, err := text(val)
		if err == nil && strings.TrimSpace(s) == "" {
			err = fmt.Errorf("is empty: give a URI such as qemu:///system")
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", from, err)
		}
		out.Hosts = append([]LibvirtHost{{URI: strings.TrimSpace(s)}}, out.Hosts...)
	case len(out.Hosts) == 0:
		out.Hosts = []LibvirtHost{{URI: defaultURI}}
	}
	return out, nil
}
