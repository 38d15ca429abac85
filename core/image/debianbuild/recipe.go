package debianbuild

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strings"

	"github.com/fvmhq/fvm/core/vm"
)

// recipeVersion changes whenever the build steps change in a way the other inputs of
// the cache key do not show, so existing images are rebuilt.
const recipeVersion = "3"

// Defaults of the image.
const (
	defaultRootSize = 2 << 30
	espSize         = 64 << 20
	rootLabel       = "debian-root"
	espLabel        = "ESP"
	uuidPlaceholder = "@ROOT_UUID@"
	// bootEFI is where the GRUB hook leaves the EFI binary inside the tree, for download.
	bootEFI = "/tmp/fvm-boot.efi"
)

// basePackages is what a cloud image needs on top of mmdebstrap's minbase variant
// (which installs no Recommends, so they are spelled out); the kernel is per arch.
var basePackages = []string{
	// boot and system
	"initramfs-tools", "systemd-sysv", "udev", "dbus", "libpam-systemd",
	"systemd-timesyncd", "kmod", "zstd", // zstd: a smaller initrd that unpacks faster
	// cloud-init and its helpers: growpart (cloud-guest-utils) grows the root partition;
	// Debian's cloud-init renders network config for ifupdown (eni), which needs dhclient.
	"cloud-init", "cloud-guest-utils", "fdisk", "gdisk", "ifupdown", "isc-dhcp-client",
	"openssh-server", "openssh-sftp-server", "qemu-guest-agent", "sudo",
	// what people expect on a cloud image
	"ca-certificates", "curl", "iproute2", "iputils-ping", "less", "netbase", "procps",
}

// aptOpts and dpkgOpts keep the image small: no translations, man pages or docs
// (copyright files stay).
var (
	aptOpts  = []string{`Acquire::Languages "none"`}
	dpkgOpts = []string{
		"path-exclude=/usr/share/man/*",
		"path-exclude=/usr/share/doc/*",
		"path-include=/usr/share/doc/*/copyright",
		"path-exclude=/usr/share/locale/*",
		"path-include=/usr/share/locale/locale.alias",
	}
)

// essentialHook runs after the essential packages, before the kernel is installed, so
// the initramfs is built lean the first time: only the modules a VM's boot disk needs
// (virtio, NVMe for vz, ext4) instead of MODULES=most. Under software emulation that
// is seconds less per boot (a ~30 MB initrd takes ~7 s just to unpack). udev's
// hardware database stays out of it too (13 of its 33 MB: under TCG, in turns on
// one VM, the root was mounted 0.7 s sooner, 0.2 s of it the kernel's unpack).
const essentialHook = `set -eu
root="$1"
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
echo MODULES=list > "$root/etc/initramfs-tools/conf.d/fvm-modules.conf"
cat > "$root/etc/initramfs-tools/hooks/fvm-modules" <<'EOF'
#!/bin/sh
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk virtio_scsi sd_mod nvme ext4 crc32c_generic
EOF
chmod 0755 "$root/etc/initramfs-tools/hooks/fvm-modules"
cat > "$root/etc/initramfs-tools/hooks/fvm-no-hwdb" <<'EOF'
#!/bin/sh
# fvm: udev's hardware database (13 MB) finds no use in finding the root disk.
case "$1" in prereqs) exit 0 ;; esac
rm -f "$DESTDIR/usr/lib/udev/hwdb.bin" "$DESTDIR/etc/udev/hwdb.bin"
EOF
chmod 0755 "$root/etc/initramfs-tools/hooks/fvm-no-hwdb"
`

// customizeHook runs (via sh -c, "$1" = the root directory) after the packages are in.
const customizeHook = `set -eu
root="$1"
# cloud-init writes its network config to interfaces.d: ifupdown reads it only when sourced.
cat > "$root/etc/network/interfaces" <<'EOF'
# cloud-init writes the network configuration into interfaces.d.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
EOF
mkdir -p "$root/etc/network/interfaces.d"
mkdir -p "$root/etc/cloud/cloud.cfg.d"
cat > "$root/etc/cloud/cloud.cfg.d/90_fvm.cfg" <<'EOF'
# fvm attaches a NoCloud seed (volume label cidata): do not probe other clouds.
datasource_list: [ NoCloud, None ]
# C.UTF-8 is built into libc: nothing to generate on first boot (no locales package).
locale: C.UTF-8
# RSA and DSA keys take many seconds to generate under emulation; fvm injects ed25519.
ssh_genkeytypes: [ed25519, ecdsa]
# Put the hostname into /etc/hosts, or sudo warns that it cannot resolve it.
manage_etc_hosts: true
# GRUB is a standalone binary on the ESP, not a Debian package to configure.
grub_dpkg:
  enabled: false
EOF
printf 'UUID=@ROOT_UUID@\t/\text4\tdefaults,errors=remount-ro\t0\t1\n' > "$root/etc/fstab"
echo debian > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
# Each VM must get its own identity: machine-id on first boot, ssh host keys from cloud-init.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
# No root password: log in as the cloud-init user.
chroot "$root" passwd --lock root
rm -f "$root/etc/resolv.conf"
`

// grubBuildHook (customize, "$1" = the root directory) installs the release's own
// GRUB EFI modules for the image's arch into the tree, builds the standalone EFI binary
// there (under qemu-user for a foreign arch) and leaves it at bootEFI for download. The
// tree's package list is noted first, so grubPurgeHook removes exactly what this added:
// the image carries no GRUB package (the binary on the ESP boots the /vmlinuz symlinks,
// so kernel upgrades need none). Apt and dpkg run only through chroot, as the tree's own
// programs on the tree's own database: never on the host's. It runs before
// customizeHook, which removes the resolv.conf apt needs.
const grubBuildHook = `set -eu
root="$1"
# GRUB's dependencies trigger initramfs rebuilds (minutes under qemu-user) that end
# where they began: the kernel's initramfs is already built. Off until the purge.
conf="$root/etc/initramfs-tools/update-initramfs.conf"
cp -p "$conf" "$root/tmp/fvm-update-initramfs.conf"
sed -i 's/^update_initramfs=.*/update_initramfs=no/' "$conf"
installed() { chroot "$root" dpkg-query -W -f '${Status} ${Package}\n' | awk '$3 == "installed" { print $4 }' | sort; }
installed > "$root/tmp/fvm-packages-before"
chroot "$root" apt-get install -y -q --no-install-recommends @GRUB_PKG@
installed > "$root/tmp/fvm-packages-grub"
cat > "$root/tmp/fvm-grub.cfg" <<'EOF'
@GRUB_CFG@EOF
chroot "$root" grub-mkstandalone @GRUB_ARGS@
`

// grubPurgeHook removes what grubBuildHook installed and its files.
const grubPurgeHook = `set -eu
root="$1"
added=$(comm -13 "$root/tmp/fvm-packages-before" "$root/tmp/fvm-packages-grub")
chroot "$root" apt-get purge -y -q $added
mv "$root/tmp/fvm-update-initramfs.conf" "$root/etc/initramfs-tools/update-initramfs.conf"
rm -f "$root/tmp/fvm-packages-before" "$root/tmp/fvm-packages-grub" "$root/tmp/fvm-grub.cfg" "$root` + bootEFI + `"
`

// recipe is everything that decides the image's content; its hash is the cache key.
type recipe struct {
	Version       string   `json:"version"`
	Release       string   `json:"release"` // Debian version, "13"
	Suite         string   `json:"suite"`
	Arch          vm.Arch  `json:"arch"`
	Packages      []string `json:"packages"`
	AptOpts       []string `json:"aptOpts"`
	DpkgOpts      []string `json:"dpkgOpts"`
	Hook          string   `json:"hook"`
	EssentialHook string   `json:"essentialHook"`
	GrubHook      string   `json:"grubHook"` // grubBuildHook as run, with the config template and modules
	GrubPurge     string   `json:"grubPurge"`
	LeanHook      string   `json:"leanHook,omitempty"` // the lean recipe's changes (lean.go); "" for the classic one
	EFIFile       string   `json:"efiFile"`
	Sources       string   `json:"sources"` // content of the apt sources file, "" for mmdebstrap's default
	RootSize      int64    `json:"rootSize"`
	ESPSize       int64    `json:"espSize"`
}

// recipeInput is what a build asks for, resolved.
type recipeInput struct {
	Release  release
	Arch     archInfo
	Extra    []string // packages on top of the recipe's
	Sources  []byte
	RootSize int64
	Recipe   string // RecipeLean or RecipeClassic
}

func newRecipe(in recipeInput) recipe {
	lean := in.Recipe != RecipeClassic
	kernelArgs := ""
	if lean {
		kernelArgs = leanGrubKernelArgs
	}
	pkgs := append(slices.Clone(basePackages), in.Arch.Kernel)
	for _, p := range in.Extra {
		if !slices.Contains(pkgs, p) {
			pkgs = append(pkgs, p)
		}
	}
	slices.Sort(pkgs)
	grub := strings.NewReplacer(
		"@GRUB_PKG@", in.Arch.GrubPkg,
		"@GRUB_CFG@", grubTemplate(in.Release, in.Arch, kernelArgs),
		"@GRUB_ARGS@", shellQuote(grubMkstandaloneArgs(in.Arch.GrubTarget, bootEFI, "/tmp/fvm-grub.cfg")),
	).Replace(grubBuildHook)
	r := recipe{
		Version: recipeVersion, Release: in.Release.Version, Suite: in.Release.Suite, Arch: in.Arch.Arch, Packages: pkgs,
		AptOpts: aptOpts, DpkgOpts: dpkgOpts, Hook: customizeHook, EssentialHook: essentialHook,
		GrubHook: grub, GrubPurge: grubPurgeHook, EFIFile: in.Arch.EFIFile,
		Sources: string(in.Sources), RootSize: in.RootSize, ESPSize: espSize,
	}
	if lean {
		r.Version, r.LeanHook = leanRecipeVersion, strings.ReplaceAll(leanHook, "@CONSOLE@", in.Arch.Console)
	}
	return r
}

// key is the hex SHA-256 of the recipe: same key, same image.
func (r recipe) key() string {
	b, _ := json.Marshal(r) // plain strings and numbers: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// bootstrapPaths are the files and directories mmdebstrap works with.
type bootstrapPaths struct {
	Target  string // the root tarball to write
	EFI     string // where to copy the built GRUB EFI binary out to
	Sources string // apt sources file, or "" for mmdebstrap's default mirror
	DebsIn  string // .deb files of an earlier build to reuse, or "" for none
	DebsOut string // where to leave the .deb files this build used, or ""
}

// mmdebstrapArgs is the argv (without the program) that writes the root tarball
// and the GRUB EFI binary.
func (r recipe) mmdebstrapArgs(p bootstrapPaths, rootUUID string) []string {
	args := []string{
		"--mode=auto", // root when root, else unshare or fakechroot
		"--variant=minbase",
		"--arch=" + string(r.Arch),
		"--format=tar",
		"--include=" + strings.Join(r.Packages, ","),
	}
	for _, o := range r.AptOpts {
		args = append(args, "--aptopt="+o)
	}
	for _, o := range r.DpkgOpts {
		args = append(args, "--dpkgopt="+o)
	}
	if p.DebsIn != "" {
		// Reuse the packages of the last build: apt checks them against the index and
		// downloads only what changed. Unlinking essential debs would empty the cache.
		args = append(args, "--skip=essential/unlink",
			`--setup-hook=mkdir -p "$1"/var/cache/apt/archives/`,
			"--setup-hook=sync-in "+p.DebsIn+" /var/cache/apt/archives/")
	}
	uuid := func(s string) string { return strings.ReplaceAll(s, uuidPlaceholder, rootUUID) }
	args = append(args, "--essential-hook="+r.EssentialHook,
		// GRUB first: its apt run needs the tree as mmdebstrap set it up.
		"--customize-hook="+uuid(r.GrubHook),
		"--customize-hook=download "+bootEFI+" "+p.EFI,
		"--customize-hook="+r.GrubPurge)
	if p.DebsOut != "" {
		args = append(args, "--customize-hook=sync-out /var/cache/apt/archives "+p.DebsOut)
	}
	args = append(args, "--customize-hook="+uuid(r.Hook))
	if r.LeanHook != "" {
		args = append(args, "--customize-hook="+uuid(r.LeanHook))
	}
	args = append(args, r.Suite, p.Target)
	if p.Sources != "" {
		args = append(args, p.Sources)
	}
	return args
}

// hostSourceCandidates are the host's apt sources files, most specific first.
var hostSourceCandidates = []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"}

// pickSources returns the sources file to build from and its content: explicit wins;
// else the first host file that names the suite (a Debian host of that release, so its
// mirror and proxy settings work); else none, and mmdebstrap uses deb.debian.org.
func pickSources(explicit, suite string, candidates []string) (string, []byte, error) {
	if explicit != "" {
		b, err := os.ReadFile(explicit)
		return explicit, b, err
	}
	for _, c := range candidates {
		b, err := os.ReadFile(c)
		if err == nil && namesSuite(b, suite) {
			return c, b, nil
		}
	}
	return "", nil, nil
}

// namesSuite reports whether an uncommented line of an apt sources file names suite.
func namesSuite(b []byte, suite string) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if slices.Contains(strings.Fields(line), suite) {
			return true
		}
	}
	return false
}

// shellQuote joins args for a POSIX shell (and for the build log).
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@+%", r))
		}) < 0 {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
