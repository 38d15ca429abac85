package image

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/vm"
	"go.yaml.in/yaml/v3"
)

//go:embed catalog.yaml
var builtinCatalog []byte

// Catalog lists the distributions fvm can pull, as data (catalog.yaml), so a
// new release is a data change and the config file can add its own.
type Catalog struct {
	Distros []Distro `yaml:"distros" json:"distros" mapstructure:"distros"`
}

// Distro is one upstream: a mirror (base URL) and its releases.
type Distro struct {
	Name    string            `yaml:"name" json:"name" mapstructure:"name"`
	Title   string            `yaml:"title,omitempty" json:"title,omitempty" mapstructure:"title"`
	Aliases []string          `yaml:"aliases,omitempty" json:"aliases,omitempty" mapstructure:"aliases"`
	Mirror  string            `yaml:"mirror" json:"mirror" mapstructure:"mirror"`
	Arch    map[string]string `yaml:"arch" json:"arch" mapstructure:"arch"` // vm.Arch -> upstream name
	// Releases, newest first by convention; one may be the default.
	Releases []Release `yaml:"releases" json:"releases" mapstructure:"releases"`
	// Trust says what authenticates downloads (trust.go); absent: nothing but
	// the mirror's own checksum index.
	Trust *Trust `yaml:"trust,omitempty" json:"trust,omitempty" mapstructure:"trust"`
}

// Release describes where one release's images and checksum index live below
// the mirror. See catalog.yaml for the template variables.
type Release struct {
	Version   string    `yaml:"version" json:"version" mapstructure:"version"`
	Codename  string    `yaml:"codename,omitempty" json:"codename,omitempty" mapstructure:"codename"`
	Aliases   []string  `yaml:"aliases,omitempty" json:"aliases,omitempty" mapstructure:"aliases"`
	Default   bool      `yaml:"default,omitempty" json:"default,omitempty" mapstructure:"default"`
	List      *Listing  `yaml:"list,omitempty" json:"list,omitempty" mapstructure:"list"`
	Dir       string    `yaml:"dir" json:"dir" mapstructure:"dir"`
	File      string    `yaml:"file" json:"file" mapstructure:"file"`
	Checksums string    `yaml:"checksums" json:"checksums" mapstructure:"checksums"`
	Fallback  *Location `yaml:"fallback,omitempty" json:"fallback,omitempty" mapstructure:"fallback"`
}

// Listing discovers a file or build whose name is not fixed (dated builds,
// respins, patch versions) from a directory index.
type Listing struct {
	Dir   string `yaml:"dir" json:"dir" mapstructure:"dir"`
	Match string `yaml:"match" json:"match" mapstructure:"match"` // regexp; {arch} is substituted quoted
}

// Location overrides Dir/File/Checksums; empty fields keep the release's.
type Location struct {
	Dir       string `yaml:"dir,omitempty" json:"dir,omitempty" mapstructure:"dir"`
	File      string `yaml:"file,omitempty" json:"file,omitempty" mapstructure:"file"`
	Checksums string `yaml:"checksums,omitempty" json:"checksums,omitempty" mapstructure:"checksums"`
}

// Entry is a catalog release resolved for one architecture.
type Entry struct {
	Distro       string  `json:"distro"`
	Title        string  `json:"title"`
	Version      string  `json:"version"`
	Codename     string  `json:"codename,omitempty"`
	Arch         vm.Arch `json:"arch"`
	UpstreamArch string  `json:"upstreamArch"`
	Mirror       string  `json:"mirror"`
	Release      Release `json:"release"`
	Trust        Trust   `json:"trust"`
}

// Ref is the canonical reference, e.g. "debian:13".
func (e Entry) Ref() string { return e.Distro + ":" + e.Version }

// ParseCatalog reads a catalog in catalog.yaml's shape (YAML or JSON) and validates it.
func ParseCatalog(data []byte) (*Catalog, error) {
	var c Catalog
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("image catalog: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Builtin returns a fresh copy of the embedded catalog.
func Builtin() *Catalog {
	c, err := ParseCatalog(builtinCatalog)
	if err != nil {
		panic("embedded catalog.yaml: " + err.Error()) // caught by the tests
	}
	return c
}

var (
	distroNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	templateRE   = regexp.MustCompile(`\{[^}]*\}`)
)

// Validate checks names, URLs, templates and patterns, naming the bad field.
func (c *Catalog) Validate() error {
	seen := map[string]string{}
	for _, d := range c.Distros {
		if !distroNameRE.MatchString(d.Name) {
			return fmt.Errorf("image catalog: distro name %q: use lowercase letters, digits, '.', '_' or '-'", d.Name)
		}
		for _, n := range append([]string{d.Name}, d.Aliases...) {
			if prev, dup := seen[n]; dup {
				return fmt.Errorf("image catalog: %q names both %s and %s", n, prev, d.Name)
			}
			seen[n] = d.Name
		}
		if err := checkMirror(d.Mirror); err != nil {
			return fmt.Errorf("image catalog: %s: %w", d.Name, err)
		}
		if err := d.Trust.validate(); err != nil {
			return fmt.Errorf("image catalog: %s: trust: %w", d.Name, err)
		}
		if len(d.Arch) == 0 {
			return fmt.Errorf("image catalog: %s: no architectures", d.Name)
		}
		for a, up := range d.Arch {
			if _, err := vm.ParseArch(a); err != nil || up == "" {
				return fmt.Errorf("image catalog: %s: arch %q -> %q: use amd64 or arm64 mapped to upstream's name", d.Name, a, up)
			}
		}
		if len(d.Releases) == 0 {
			return fmt.Errorf("image catalog: %s: no releases", d.Name)
		}
		defaults := 0
		versions := map[string]bool{}
		for _, r := range d.Releases {
			if err := r.validate(); err != nil {
				return fmt.Errorf("image catalog: %s:%s: %w", d.Name, r.Version, err)
			}
			for _, v := range r.names() {
				if versions[v] {
					return fmt.Errorf("image catalog: %s: version or codename %q is listed twice", d.Name, v)
				}
				versions[v] = true
			}
			if r.Default {
				defaults++
			}
		}
		if defaults > 1 {
			return fmt.Errorf("image catalog: %s: %d releases are marked default, want at most one", d.Name, defaults)
		}
	}
	return nil
}

func (t *Trust) validate() error {
	if t == nil {
		return nil
	}
	switch t.Signed {
	case "":
		if t.Index != "" {
			return checkMirror(t.Index)
		}
		return nil
	case SignedIndexDetached, SignedImage, SignedIndexClearsigned:
	default:
		return fmt.Errorf("signed %q: use %s, %s or %s", t.Signed, SignedIndexDetached, SignedIndexClearsigned, SignedImage)
	}
	if _, ok := embeddedKeys[t.Keys]; !ok {
		return fmt.Errorf("keys %q: use one of the embedded keyrings %s", t.Keys, strings.Join(KeyringNames(), ", "))
	}
	if t.Signed != SignedIndexClearsigned && t.Sig == "" {
		return errors.New("sig (the signature file's name) is required")
	}
	return checkTemplate(t.Sig, []string{"{checksums}", "{file}"})
}

func checkMirror(m string) error {
	u, err := url.Parse(m)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("mirror %q is not an http(s) URL", m)
	}
	return nil
}

func (r Release) names() []string {
	out := []string{r.Version}
	if r.Codename != "" {
		out = append(out, r.Codename)
	}
	return append(out, r.Aliases...)
}

func (r Release) validate() error {
	if r.Version == "" || strings.ContainsAny(r.Version, ":/ ") {
		return fmt.Errorf("version %q is empty or holds ':', '/' or a space", r.Version)
	}
	if r.Dir == "" || r.File == "" || r.Checksums == "" {
		return errors.New("dir, file and checksums are required")
	}
	vars := []string{"{arch}"}
	if r.List != nil {
		if r.List.Dir == "" || r.List.Match == "" {
			return errors.New("list needs dir and match")
		}
		if _, err := regexp.Compile(strings.ReplaceAll(r.List.Match, "{arch}", "x")); err != nil {
			return fmt.Errorf("list.match: %w", err)
		}
		if err := checkTemplate(r.List.Dir, vars); err != nil {
			return fmt.Errorf("list.dir: %w", err)
		}
		vars = append(vars, "{build}", "{name}")
	}
	for field, t := range map[string]string{"dir": r.Dir, "file": r.File} {
		if err := checkTemplate(t, vars); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
	}
	if err := checkTemplate(r.Checksums, append(vars, "{file}")); err != nil {
		return fmt.Errorf("checksums: %w", err)
	}
	if f := r.Fallback; f != nil {
		fb := []string{"{arch}"}
		for field, t := range map[string]string{"fallback.dir": f.Dir, "fallback.file": f.File} {
			if err := checkTemplate(t, fb); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
		}
		if err := checkTemplate(f.Checksums, append(fb, "{file}")); err != nil {
			return fmt.Errorf("fallback.checksums: %w", err)
		}
		loc := r.location(true)
		if strings.Contains(loc.Dir+loc.File+loc.Checksums, "{build}") || strings.Contains(loc.Dir+loc.File+loc.Checksums, "{name}") {
			return errors.New("fallback inherits a field that uses {build} or {name}: set it in fallback")
		}
	}
	return nil
}

func checkTemplate(t string, allowed []string) error {
	for _, v := range templateRE.FindAllString(t, -1) {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("%q uses %s here: allowed are %s", t, v, strings.Join(allowed, " "))
		}
	}
	if strings.Contains(t, "..") || strings.HasPrefix(t, "/") {
		return fmt.Errorf("%q must be a relative path without '..'", t)
	}
	return nil
}

// location returns the release's location or, for fallback, the fallback's
// fields over the release's.
func (r Release) location(fallback bool) Location {
	loc := Location{Dir: r.Dir, File: r.File, Checksums: r.Checksums}
	if fallback && r.Fallback != nil {
		if r.Fallback.Dir != "" {
			loc.Dir = r.Fallback.Dir
		}
		if r.Fallback.File != "" {
			loc.File = r.Fallback.File
		}
		if r.Fallback.Checksums != "" {
			loc.Checksums = r.Fallback.Checksums
		}
	}
	return loc
}

// Merge adds extra's distros and releases (from the config file) to c: a
// release with a known version replaces it, a new one is added, a distro's
// mirror, title and architectures are overridden where extra sets them.
func (c *Catalog) Merge(extra *Catalog) error {
	if extra == nil {
		return nil
	}
	for _, xd := range extra.Distros {
		i := slices.IndexFunc(c.Distros, func(d Distro) bool { return d.Name == xd.Name })
		if i < 0 {
			c.Distros = append(c.Distros, xd)
			continue
		}
		d := &c.Distros[i]
		if xd.Title != "" {
			d.Title = xd.Title
		}
		if xd.Mirror != "" {
			d.Mirror = xd.Mirror
		}
		for _, a := range xd.Aliases {
			if !slices.Contains(d.Aliases, a) {
				d.Aliases = append(d.Aliases, a)
			}
		}
		if len(xd.Arch) > 0 {
			arch := map[string]string{}
			for k, v := range d.Arch {
				arch[k] = v
			}
			for k, v := range xd.Arch {
				arch[k] = v
			}
			d.Arch = arch
		}
		for _, xr := range xd.Releases {
			if xr.Default {
				for j := range d.Releases {
					d.Releases[j].Default = false
				}
			}
			if j := slices.IndexFunc(d.Releases, func(r Release) bool { return r.Version == xr.Version }); j >= 0 {
				d.Releases[j] = xr
			} else {
				d.Releases = append(d.Releases, xr)
			}
		}
	}
	return c.Validate()
}

// MirrorEnv names the environment variable that overrides a distro's mirror,
// following viper's mapping of images.<distro>.mirror.
func MirrorEnv(distro string) string {
	return "FVM_IMAGES_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(distro)) + "_MIRROR"
}

// SetMirrors points distros at other base URLs (config images.<distro>.mirror,
// env FVM_IMAGES_<DISTRO>_MIRROR). Empty values are ignored.
func (c *Catalog) SetMirrors(mirrors map[string]string) error {
	for name, m := range mirrors {
		if m == "" {
			continue
		}
		d := c.find(strings.ToLower(name))
		if d == nil {
			return fmt.Errorf("images.%s.mirror: no distro %q in the image catalog (have %s)", name, name, strings.Join(c.Names(), ", "))
		}
		if err := checkMirror(m); err != nil {
			return fmt.Errorf("images.%s.mirror: %w", name, err)
		}
		d.Mirror = strings.TrimRight(m, "/")
	}
	return nil
}

// IndexEnv names the environment variable that moves where a distro's
// unsigned checksum index is read from (images.<distro>.index).
func IndexEnv(distro string) string {
	return strings.TrimSuffix(MirrorEnv(distro), "_MIRROR") + "_INDEX"
}

// SetIndexes moves the checksum index of distros that sign nothing
// (images.<distro>.index, FVM_IMAGES_<DISTRO>_INDEX): whoever serves it then
// decides what the image may be. Empty values are ignored.
func (c *Catalog) SetIndexes(indexes map[string]string) error {
	for name, u := range indexes {
		if u == "" {
			continue
		}
		d := c.find(strings.ToLower(name))
		if d == nil {
			return fmt.Errorf("images.%s.index: no distro %q in the image catalog (have %s)", name, name, strings.Join(c.Names(), ", "))
		}
		if err := checkMirror(u); err != nil {
			return fmt.Errorf("images.%s.index: %w", name, err)
		}
		if d.Trust != nil && d.Trust.Signed != "" {
			return fmt.Errorf("images.%s.index: %s signs its downloads: its checksum index comes with the image", name, d.Name)
		}
		t := Trust{}
		if d.Trust != nil {
			t = *d.Trust
		}
		t.Index = strings.TrimRight(u, "/")
		d.Trust = &t
	}
	return nil
}

// Names lists the distro names, sorted.
func (c *Catalog) Names() []string {
	var out []string
	for _, d := range c.Distros {
		out = append(out, d.Name)
	}
	sort.Strings(out)
	return out
}

func (c *Catalog) find(name string) *Distro {
	for i, d := range c.Distros {
		if d.Name == name || slices.Contains(d.Aliases, name) {
			return &c.Distros[i]
		}
	}
	return nil
}

// ErrUnknownImage means a reference names nothing in the catalog.
var ErrUnknownImage = errors.New("unknown image")

// Resolve finds the release a reference names for arch: "debian" (the newest
// stable), "debian:12", "debian:bookworm", "ubuntu:24.04", "ubuntu:noble".
func (c *Catalog) Resolve(ref string, arch vm.Arch) (Entry, error) {
	name, version, _ := strings.Cut(strings.ToLower(strings.TrimSpace(ref)), ":")
	d := c.find(name)
	if d == nil {
		return Entry{}, fmt.Errorf("%w %q: known images are %s (see fvm images --available)", ErrUnknownImage, ref, strings.Join(c.Names(), ", "))
	}
	r, err := d.release(version)
	if err != nil {
		return Entry{}, err
	}
	a, err := vm.ParseArch(string(arch))
	if err != nil {
		return Entry{}, err
	}
	up, ok := d.Arch[string(a)]
	if !ok {
		return Entry{}, fmt.Errorf("%s:%s: upstream publishes no %s image (available: %s)", d.Name, r.Version, a, strings.Join(d.arches(), ", "))
	}
	e := Entry{
		Distro: d.Name, Title: d.Title, Version: r.Version, Codename: r.Codename,
		Arch: a, UpstreamArch: up, Mirror: strings.TrimRight(d.Mirror, "/"), Release: r,
	}
	if d.Trust != nil {
		e.Trust = *d.Trust
	}
	return e, nil
}

func (d *Distro) release(version string) (Release, error) {
	if version == "" || version == "latest" {
		for _, r := range d.Releases {
			if r.Default {
				return r, nil
			}
		}
		return d.Releases[0], nil
	}
	for _, r := range d.Releases {
		if slices.Contains(r.names(), version) {
			return r, nil
		}
	}
	var have []string
	for _, r := range d.Releases {
		s := r.Version
		if r.Codename != "" {
			s += " (" + r.Codename + ")"
		}
		have = append(have, s)
	}
	return Release{}, fmt.Errorf("%w %s:%s: %s releases in the catalog are %s", ErrUnknownImage, d.Name, version, d.Name, strings.Join(have, ", "))
}

func (d *Distro) arches() []string {
	var out []string
	for a := range d.Arch {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// List returns every release in catalog order.
func (c *Catalog) List() []api.CatalogItem {
	var out []api.CatalogItem
	for _, d := range c.Distros {
		var arches []vm.Arch
		for _, a := range d.arches() {
			arches = append(arches, vm.Arch(a))
		}
		def := ""
		if r, err := d.release(""); err == nil {
			def = r.Version
		}
		for _, r := range d.Releases {
			out = append(out, api.CatalogItem{
				Ref: d.Name + ":" + r.Version, Distro: d.Name, Title: d.Title, Version: r.Version,
				Codename: r.Codename, Default: r.Version == def, Arches: arches, Mirror: d.Mirror,
				Trust: d.Trust.TrustText(d.Mirror),
			})
		}
	}
	return out
}
