package debianbuild

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fvmhq/fvm/core/vm"
)

func testInput(t *testing.T, version string, arch vm.Arch, extra ...string) recipeInput {
	t.Helper()
	r, err := findRelease(version)
	if err != nil {
		t.Fatal(err)
	}
	a, err := findArch(arch, vm.AMD64)
	if err != nil {
		t.Fatal(err)
	}
	return recipeInput{Release: r, Arch: a, Extra: extra, Sources: []byte("deb http://deb.debian.org/debian " + r.Suite + " main\n"), RootSize: defaultRootSize}
}

func TestRecipeKey(t *testing.T) {
	base := newRecipe(testInput(t, "13", vm.AMD64))
	if k := base.key(); len(k) != 64 || k != newRecipe(testInput(t, "13", vm.AMD64)).key() {
		t.Fatalf("key %q is not a stable SHA-256", k)
	}
	if newRecipe(testInput(t, "13", vm.AMD64, "vim", "jq")).key() != newRecipe(testInput(t, "13", vm.AMD64, "jq", "vim")).key() {
		t.Error("the order of --packages changes the key")
	}
	if newRecipe(testInput(t, "13", vm.AMD64, "sudo")).key() != base.key() {
		t.Error("asking for a package the recipe has anyway changes the key")
	}
	// Whole builds that must never share a key (the cache would serve one for the other).
	builds := map[string]recipe{
		"13 amd64":       base,
		"13 arm64":       newRecipe(testInput(t, "13", vm.ARM64)),
		"12 amd64":       newRecipe(testInput(t, "12", vm.AMD64)),
		"12 arm64":       newRecipe(testInput(t, "12", vm.ARM64)),
		"13 amd64 + vim": newRecipe(testInput(t, "13", vm.AMD64, "vim")),
		"13 arm64 + vim": newRecipe(testInput(t, "13", vm.ARM64, "vim")),
	}
	seen := map[string]string{}
	for what, r := range builds {
		if other, ok := seen[r.key()]; ok {
			t.Errorf("%s and %s share a cache key", what, other)
		}
		seen[r.key()] = what
	}
	changed := map[string]recipe{}
	r := base
	r.Sources = "deb http://mirror.example/debian trixie main\n"
	changed["sources"] = r
	r = base
	r.RootSize = 3 << 30
	changed["root size"] = r
	r = base
	r.Packages = append(slices.Clone(base.Packages), "vim")
	changed["packages"] = r
	r = base
	r.Version = "999"
	changed["recipe version"] = r
	r = base
	r.Hook += "true\n"
	changed["hook"] = r
	r = base
	r.GrubHook += "true\n"
	changed["grub hook"] = r
	r = base
	r.Suite = "forky"
	changed["suite"] = r
	for what, c := range changed {
		if c.key() == base.key() {
			t.Errorf("changing the %s keeps the cache key", what)
		}
	}
}

func TestRecipePerReleaseAndArch(t *testing.T) {
	for _, tc := range []struct {
		version string
		arch    vm.Arch
		suite   string
		kernel  string
		grub    string
		target  string
		efi     string
		console string
	}{
		{"13", vm.AMD64, "trixie", "linux-image-amd64", "grub-efi-amd64-bin", "x86_64-efi", "BOOTX64.EFI", "console=ttyS0,115200"},
		{"13", vm.ARM64, "trixie", "linux-image-arm64", "grub-efi-arm64-bin", "arm64-efi", "BOOTAA64.EFI", "console=ttyAMA0,115200"},
		{"12", vm.AMD64, "bookworm", "linux-image-amd64", "grub-efi-amd64-bin", "x86_64-efi", "BOOTX64.EFI", "console=ttyS0,115200"},
		{"bookworm", vm.ARM64, "bookworm", "linux-image-arm64", "grub-efi-arm64-bin", "arm64-efi", "BOOTAA64.EFI", "console=ttyAMA0,115200"},
	} {
		t.Run(tc.version+"-"+string(tc.arch), func(t *testing.T) {
			r := newRecipe(testInput(t, tc.version, tc.arch, "jq"))
			if r.Suite != tc.suite || r.Arch != tc.arch || r.EFIFile != tc.efi {
				t.Errorf("recipe %s %s, EFI file %s", r.Suite, r.Arch, r.EFIFile)
			}
			if !slices.IsSorted(r.Packages) || !slices.Contains(r.Packages, tc.kernel) || !slices.Contains(r.Packages, "jq") {
				t.Errorf("packages %q: want sorted, with %s and jq", r.Packages, tc.kernel)
			}
			other := "linux-image-arm64"
			if tc.arch == vm.ARM64 {
				other = "linux-image-amd64"
			}
			if slices.Contains(r.Packages, other) || slices.Contains(r.Packages, tc.grub) {
				t.Errorf("packages %q hold %s or GRUB (GRUB is only in the tree while its hook runs)", r.Packages, other)
			}
			for _, want := range []string{"apt-get install -y -q --no-install-recommends " + tc.grub, "grub-mkstandalone -O " + tc.target + " -o " + bootEFI,
				tc.console, "menuentry 'Debian GNU/Linux " + r.Release + "'"} {
				if !strings.Contains(r.GrubHook, want) {
					t.Errorf("GRUB hook lacks %q:\n%s", want, r.GrubHook)
				}
			}
			if serial := strings.Contains(r.GrubHook, "serial --unit=0"); serial != (tc.arch == vm.AMD64) {
				t.Errorf("GRUB's 16550 serial setup is for x86 only: %v on %s", serial, tc.arch)
			}
		})
	}
	for _, p := range []string{"systemd-sysv", "openssh-server", "cloud-init", "cloud-guest-utils",
		"qemu-guest-agent", "ifupdown", "isc-dhcp-client", "sudo", "ca-certificates"} {
		if !slices.Contains(newRecipe(testInput(t, "13", vm.ARM64)).Packages, p) {
			t.Errorf("package %s missing from the recipe", p)
		}
	}
}

// Every package command of the hooks runs inside the tree: apt or dpkg from
// the outside would install into the host (mmdebstrap's APT_CONFIG does not
// chroot dpkg).
func TestHooksTouchOnlyTheTree(t *testing.T) {
	r := newRecipe(testInput(t, "13", vm.ARM64))
	for name, hook := range map[string]string{"grub": r.GrubHook, "purge": r.GrubPurge, "customize": r.Hook, "essential": r.EssentialHook} {
		for _, line := range strings.Split(hook, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, prog := range []string{"apt-get ", "apt ", "dpkg ", "dpkg-query ", "grub-mkstandalone ", "passwd "} {
				i := strings.Index(line, prog)
				if i < 0 || (i > 0 && strings.ContainsAny(line[i-1:i], "-_/")) {
					continue
				}
				if !strings.HasSuffix(strings.TrimSpace(line[:i]), `chroot "$root"`) {
					t.Errorf("%s hook runs %s outside the tree: %q", name, strings.TrimSpace(prog), line)
				}
			}
		}
	}
}

func TestReleasesArchesAndNames(t *testing.T) {
	if r, err := findRelease(""); err != nil || r.Version != DefaultRelease || r.Suite != "trixie" {
		t.Errorf("default release = %+v, %v", r, err)
	}
	if r, err := findRelease("12"); err != nil || r.Suite != "bookworm" {
		t.Errorf("release 12 = %+v, %v", r, err)
	}
	for _, bad := range []string{"11", "14", "sid", "13.1"} {
		if _, err := findRelease(bad); err == nil || !strings.Contains(err.Error(), "12 or 13") {
			t.Errorf("release %q: %v", bad, err)
		}
	}
	if a, err := findArch("", vm.ARM64); err != nil || a.Arch != vm.ARM64 || a.QEMUUser != "qemu-aarch64" {
		t.Errorf("default arch on arm64 = %+v, %v", a, err)
	}
	if a, err := findArch("x86_64", vm.ARM64); err != nil || a.Arch != vm.AMD64 || a.QEMUUser != "qemu-x86_64" {
		t.Errorf("x86_64 = %+v, %v", a, err)
	}
	if _, err := findArch("riscv64", vm.AMD64); err == nil || !strings.Contains(err.Error(), "amd64 and arm64") {
		t.Errorf("riscv64: %v", err)
	}
	for _, tc := range []struct {
		release    string
		arch, host vm.Arch
		want       string
	}{
		{"", "", vm.AMD64, "debian-local"},
		{"13", vm.AMD64, vm.AMD64, "debian-local"},
		{"13", vm.ARM64, vm.AMD64, "debian-local-arm64"},
		{"13", vm.ARM64, vm.ARM64, "debian-local"},
		{"13", vm.AMD64, vm.ARM64, "debian-local-amd64"},
		{"12", vm.AMD64, vm.AMD64, "debian-12-local"},
		{"12", vm.ARM64, vm.AMD64, "debian-12-local-arm64"},
	} {
		if got := ImageName(tc.release, tc.arch, tc.host); got != tc.want {
			t.Errorf("ImageName(%q, %s, host %s) = %s, want %s", tc.release, tc.arch, tc.host, got, tc.want)
		}
	}
}

func TestParsePackages(t *testing.T) {
	got, err := ParsePackages([]string{"git, build-essential", "libc6-dev,g++", "git", ""})
	if want := []string{"git", "build-essential", "libc6-dev", "g++"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ParsePackages = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"Vim", "rm -rf", "a;b", "-x", "pkg=1.0", "x", "foo/bar", "$(id)"} {
		if _, err := ParsePackages([]string{bad}); err == nil || !strings.Contains(err.Error(), "not a Debian package name") || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParsePackages(%q): %v", bad, err)
		}
	}
}

func TestMmdebstrapArgs(t *testing.T) {
	r := newRecipe(recipeInput{Release: releases[1], Arch: arches[vm.ARM64], RootSize: defaultRootSize})
	uuid := "11111111-2222-4333-8444-555555555555"
	args := r.mmdebstrapArgs(bootstrapPaths{Target: "/w/rootfs.tar", EFI: "/w/BOOTAA64.EFI", Sources: "/etc/apt/sources.list.d/debian.sources"}, uuid)
	for _, want := range []string{"--mode=auto", "--variant=minbase", "--arch=arm64", "--format=tar", "--customize-hook=download " + bootEFI + " /w/BOOTAA64.EFI"} {
		if !slices.Contains(args, want) {
			t.Errorf("argv lacks %s: %q", want, args)
		}
	}
	n := len(args)
	if got := args[n-3:]; !slices.Equal(got, []string{"trixie", "/w/rootfs.tar", "/etc/apt/sources.list.d/debian.sources"}) {
		t.Errorf("argv ends with %q, want suite, target, sources", got)
	}
	if a := r.mmdebstrapArgs(bootstrapPaths{Target: "/w/rootfs.tar"}, uuid); a[len(a)-1] != "/w/rootfs.tar" {
		t.Errorf("without sources the target must come last: %q", a)
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "sync-") }) {
		t.Errorf("no package cache asked for, yet argv syncs one: %q", args)
	}
	cached := r.mmdebstrapArgs(bootstrapPaths{Target: "/w/rootfs.tar", DebsIn: "/c/debs", DebsOut: "/w/debs"}, uuid)
	for _, want := range []string{"--skip=essential/unlink", "--setup-hook=sync-in /c/debs /var/cache/apt/archives/",
		"--customize-hook=sync-out /var/cache/apt/archives /w/debs"} {
		if !slices.Contains(cached, want) {
			t.Errorf("cached argv lacks %q: %q", want, cached)
		}
	}
	// Customize hooks in order: GRUB (its apt needs resolv.conf), its download, its
	// purge, then the image's own hook (which removes resolv.conf).
	var hooks []string
	var include, ess string
	for _, a := range args {
		if s, ok := strings.CutPrefix(a, "--essential-hook="); ok {
			ess = s
		}
		if s, ok := strings.CutPrefix(a, "--customize-hook="); ok {
			hooks = append(hooks, s)
		}
		if s, ok := strings.CutPrefix(a, "--include="); ok {
			include = s
		}
	}
	if len(hooks) != 5 || !strings.Contains(hooks[4], "systemctl reenable ssh.service") || !strings.Contains(hooks[4], "root=UUID="+uuid+" ro console=tty0 console=ttyAMA0,115200") {
		t.Fatalf("the lean recipe's hook is not last: %q", hooks)
	}
	if !strings.Contains(hooks[0], "grub-mkstandalone") || !strings.HasPrefix(hooks[1], "download ") ||
		!strings.Contains(hooks[2], "apt-get purge") || !strings.Contains(hooks[3], `rm -f "$root/etc/resolv.conf"`) {
		t.Fatalf("customize hooks out of order: %q", hooks)
	}
	if !strings.Contains(hooks[0], "--set=root "+uuid) || strings.Contains(hooks[0], uuidPlaceholder) {
		t.Error("the GRUB hook's config lacks the root UUID")
	}
	hook := hooks[3]
	for _, want := range []string{"MODULES=list", "manual_add_modules virtio_pci virtio_blk", "chmod 0755"} {
		if !strings.Contains(ess, want) {
			t.Errorf("essential hook lacks %q", want)
		}
	}
	if strings.Split(include, ",")[0] == "" || strings.Contains(include, " ") || !strings.Contains(include, "linux-image-arm64") {
		t.Errorf("bad --include=%s", include)
	}
	for _, want := range []string{
		"source /etc/network/interfaces.d/*",
		"datasource_list: [ NoCloud, None ]",
		"locale: C.UTF-8",
		"UUID=" + uuid,
		`: > "$root/etc/machine-id"`,
		"passwd --lock root",
		"ssh_host_",
	} {
		if !strings.Contains(hook, want) {
			t.Errorf("customize hook lacks %q", want)
		}
	}
	if strings.Contains(hook, uuidPlaceholder) {
		t.Error("customize hook still holds the UUID placeholder")
	}
}

// The hook must be valid sh and must produce the files it promises.
func TestCustomizeHookRuns(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	root := t.TempDir()
	for _, d := range []string{"etc/network", "etc/ssh", "var/lib/dbus", "bin"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("abc\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"), []byte("k"), 0o600)
	// (the hook creates etc/cloud/cloud.cfg.d itself)
	// chroot needs root: replace it by a stub that records the call.
	stubDir := t.TempDir()
	os.WriteFile(filepath.Join(stubDir, "chroot"), []byte("#!/bin/sh\necho \"$@\" > \"$1/chroot-called\"\n"), 0o755)
	hook := strings.ReplaceAll(customizeHook, uuidPlaceholder, "u-u-i-d")
	cmd := exec.Command(sh, "-c", hook, "exec", root)
	cmd.Env = append(os.Environ(), "PATH="+stubDir+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hook failed: %v\n%s", err, out)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(root, p)); return string(b) }
	if !strings.Contains(read("etc/network/interfaces"), "source /etc/network/interfaces.d/*") {
		t.Error("interfaces does not source interfaces.d")
	}
	if !strings.Contains(read("etc/fstab"), "UUID=u-u-i-d\t/\text4") {
		t.Errorf("fstab = %q", read("etc/fstab"))
	}
	if !strings.Contains(read("etc/cloud/cloud.cfg.d/90_fvm.cfg"), "datasource_list: [ NoCloud, None ]") {
		t.Error("cloud-init datasource list not written")
	}
	if read("etc/machine-id") != "" {
		t.Error("machine-id not emptied")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key")); !os.IsNotExist(err) {
		t.Error("ssh host keys kept: every VM would share them")
	}
	if !strings.Contains(read("chroot-called"), "passwd --lock root") {
		t.Error("root password not locked")
	}
}

func TestPickSources(t *testing.T) {
	d := t.TempDir()
	deb822 := filepath.Join(d, "debian.sources")
	os.WriteFile(deb822, []byte("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"), 0o644)
	ubuntu := filepath.Join(d, "ubuntu.list")
	os.WriteFile(ubuntu, []byte("# deb http://x bookworm main\ndeb http://archive.ubuntu.com/ubuntu noble main\n"), 0o644)

	p, b, err := pickSources("", "bookworm", []string{filepath.Join(d, "missing"), ubuntu, deb822})
	if err != nil || p != deb822 || !strings.Contains(string(b), "bookworm") {
		t.Fatalf("pickSources = %q, %v; want the bookworm file", p, err)
	}
	if p, b, _ := pickSources("", "trixie", []string{ubuntu, deb822}); p != "" || b != nil {
		t.Fatalf("a bookworm host building trixie must fall back to mmdebstrap's default, got %q", p)
	}
	if p, b, _ := pickSources("", "bookworm", []string{ubuntu}); p != "" || b != nil {
		t.Fatalf("a non-Debian host must fall back to mmdebstrap's default, got %q", p)
	}
	if p, _, err := pickSources(ubuntu, "bookworm", []string{deb822}); err != nil || p != ubuntu {
		t.Fatalf("an explicit file must win, got %q, %v", p, err)
	}
	if _, _, err := pickSources(filepath.Join(d, "nope"), "bookworm", nil); err == nil {
		t.Fatal("a missing explicit sources file must fail")
	}
}

func TestGrubConfig(t *testing.T) {
	cfg := grubTemplate(releases[1], arches[vm.AMD64], "")
	for _, want := range []string{
		"search --no-floppy --fs-uuid --set=root " + uuidPlaceholder,
		"linux /vmlinuz root=UUID=" + uuidPlaceholder + " ro console=tty0 console=hvc0 console=ttyS0,115200",
		"initrd /initrd.img",
		"set timeout=0",
		"menuentry 'Debian GNU/Linux 13'",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if arm := grubTemplate(releases[0], arches[vm.ARM64], leanGrubKernelArgs); !strings.Contains(arm, "console=ttyAMA0,115200 panic=5 oops=panic\n") || strings.Contains(arm, "serial") || !strings.Contains(arm, "Debian GNU/Linux 12") {
		t.Errorf("arm64 grub.cfg:\n%s", arm)
	}
	args := grubMkstandaloneArgs("arm64-efi", "/w/BOOTAA64.EFI", "/w/grub.cfg")
	if !slices.Contains(args, "arm64-efi") || args[len(args)-1] != "boot/grub/grub.cfg=/w/grub.cfg" {
		t.Errorf("grub-mkstandalone argv = %q", args)
	}
	for _, m := range grubModules {
		if !slices.Contains(grubInstallModules, m) {
			t.Errorf("preloaded module %s is not installed in the memdisk", m)
		}
	}
}

func TestDiskLayout(t *testing.T) {
	l := newDiskLayout(espSize, defaultRootSize)
	const mib = 1 << 20
	if l.ESPOffset != mib || l.ESPSize != 64*mib {
		t.Errorf("ESP at %d size %d", l.ESPOffset, l.ESPSize)
	}
	if l.RootOffset != l.ESPOffset+l.ESPSize || l.RootOffset%mib != 0 {
		t.Errorf("root at %d: must follow the ESP on a MiB boundary", l.RootOffset)
	}
	if end := l.RootOffset + l.RootSize; l.DiskSize-end < 33*sectorSize {
		t.Errorf("no room for the backup GPT: disk %d, root ends at %d", l.DiskSize, end)
	}
	odd := newDiskLayout(10*mib+1, 1<<30+5)
	if odd.ESPSize != 11*mib || odd.RootSize != 1<<30+mib || odd.RootOffset != 12*mib {
		t.Errorf("sizes are not rounded up to MiB: %+v", odd)
	}
	script := l.sfdiskScript()
	for _, want := range []string{
		"label: gpt",
		"start=2048, size=131072, type=" + espType,
		"start=133120, size=4194304, type=" + linuxType,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("sfdisk script lacks %q:\n%s", want, script)
		}
	}
	if strings.Index(script, espType) > strings.Index(script, linuxType) {
		t.Error("root partition must come last so growpart can grow it")
	}
}

// sfdisk accepts the script on a plain file and puts the partitions where we dd them.
func TestSfdiskScriptOnFile(t *testing.T) {
	sfdisk, err := lookTool("sfdisk")
	if err != nil {
		t.Skip("sfdisk not installed (package fdisk)")
	}
	l := newDiskLayout(espSize, 1<<30)
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(p, l.DiskSize)
	cmd := exec.Command(sfdisk, "--quiet", "--no-reread", "--no-tell-kernel", p)
	cmd.Stdin = strings.NewReader(l.sfdiskScript())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	out, err := exec.Command(sfdisk, "--dump", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`start=\s*(\d+), size=\s*(\d+)`)
	m := re.FindAllStringSubmatch(string(out), -1)
	if len(m) != 2 || m[0][1] != "2048" || m[1][1] != "133120" || m[1][2] != "2097152" {
		t.Fatalf("sfdisk --dump:\n%s", out)
	}
}

func TestUUIDs(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := newUUID(), newUUID()
	if !re.MatchString(a) || a == b {
		t.Errorf("newUUID = %q, %q", a, b)
	}
	if v := newVolumeID(); !regexp.MustCompile(`^[0-9A-F]{8}$`).MatchString(v) {
		t.Errorf("newVolumeID = %q", v)
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"a", "b c", "it's", "", "--x=/y"})
	if want := `a 'b c' 'it'\''s' '' --x=/y`; got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
}

// The GRUB hooks are valid sh and do what they promise, with chroot stubbed (it
// needs root and a real tree): the EFI binary is built in the tree, exactly the
// packages GRUB brought are purged, and initramfs updates are off in between
// and back as they were after.
func TestGrubHooksRun(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "tmp"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/initramfs-tools"), 0o755)
	conf := filepath.Join(root, "etc/initramfs-tools/update-initramfs.conf")
	const confText = "# comment\nupdate_initramfs=yes\nbackup_initramfs=no\n"
	os.WriteFile(conf, []byte(confText), 0o644)
	stubDir := t.TempDir()
	os.WriteFile(filepath.Join(stubDir, "chroot"), []byte(`#!/bin/sh
root="$1"; shift
echo "$*" >> "$root/calls"
case "$1" in
dpkg-query)
	printf 'install ok installed base-files\ninstall ok installed libfoo\ndeinstall ok config-files oldpkg\n'
	if [ -e "$root/grub-installed" ]; then printf 'install ok installed grub-common\ninstall ok installed grub-efi-arm64-bin\n'; fi ;;
apt-get)
	[ "$2" = install ] && touch "$root/grub-installed"
	grep -q '^update_initramfs=no$' "$root/etc/initramfs-tools/update-initramfs.conf" || echo "apt ran with initramfs updates on" >> "$root/calls" ;;
grub-mkstandalone)
	touch "$root/tmp/fvm-boot.efi" ;;
esac
`), 0o755)
	r := newRecipe(testInput(t, "13", vm.ARM64))
	for _, hook := range []string{strings.ReplaceAll(r.GrubHook, uuidPlaceholder, "u-u-i-d"), r.GrubPurge} {
		cmd := exec.Command(sh, "-c", hook, "exec", root)
		cmd.Env = append(os.Environ(), "PATH="+stubDir+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("hook failed: %v\n%s", err, out)
		}
		if hook != r.GrubPurge {
			if _, err := os.Stat(filepath.Join(root, bootEFI)); err != nil {
				t.Errorf("no EFI binary at %s after the GRUB hook", bootEFI)
			}
			cfg, _ := os.ReadFile(filepath.Join(root, "tmp/fvm-grub.cfg"))
			if !strings.Contains(string(cfg), "root=UUID=u-u-i-d ro console=tty0 console=hvc0 console=ttyAMA0,115200") {
				t.Errorf("grub.cfg in the tree:\n%s", cfg)
			}
		}
	}
	calls, _ := os.ReadFile(filepath.Join(root, "calls"))
	for _, want := range []string{"apt-get install -y -q --no-install-recommends grub-efi-arm64-bin",
		"grub-mkstandalone -O arm64-efi -o /tmp/fvm-boot.efi", "apt-get purge -y -q grub-common grub-efi-arm64-bin\n"} {
		if !strings.Contains(string(calls), want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}
	if strings.Contains(string(calls), "initramfs updates on") || strings.Contains(string(calls), "libfoo") {
		t.Errorf("apt ran with initramfs updates on, or purged what was there before:\n%s", calls)
	}
	if b, _ := os.ReadFile(conf); string(b) != confText {
		t.Errorf("update-initramfs.conf after the hooks:\n%s", b)
	}
	left, _ := filepath.Glob(filepath.Join(root, "tmp", "*"))
	if len(left) != 0 {
		t.Errorf("the hooks left %q in the tree's /tmp", left)
	}
}

// The classic recipe is the image as fvm built it before the lean one: the
// same recipe, so images already built count as up to date; the lean one is
// another image, whose extra hook runs last.
func TestRecipes(t *testing.T) {
	in := testInput(t, "13", vm.AMD64)
	lean := newRecipe(in)
	in.Recipe = RecipeClassic
	classic := newRecipe(in)
	if classic.Version != recipeVersion || classic.LeanHook != "" || lean.Version != leanRecipeVersion || lean.LeanHook == "" {
		t.Fatalf("classic %s, lean %s", classic.Version, lean.Version)
	}
	if !strings.Contains(lean.GrubHook, "115200 panic=5 oops=panic") || strings.Contains(classic.GrubHook, "panic=") {
		t.Error("the lean image's GRUB reboots a guest on a kernel panic or oops; the classic one's as before")
	}
	if lean.key() == classic.key() {
		t.Fatal("the lean and classic images share a cache key")
	}
	if b, _ := json.Marshal(classic); strings.Contains(string(b), "leanHook") {
		t.Fatalf("the classic recipe's key input changed: %s", b)
	}
	for _, name := range []string{"", "lean", "classic"} {
		if _, err := checkRecipe(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	if _, err := checkRecipe("fast"); err == nil || !strings.Contains(err.Error(), "lean or classic") {
		t.Errorf("an unknown recipe: %v", err)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		if out, err := exec.Command(bash, "-n", "-c", leanHook).CombinedOutput(); err != nil {
			t.Fatalf("the lean hook is no valid shell: %v %s", err, out)
		}
	}
}

// TestFVMInitScriptsParse: the programs fvm-init's hook writes into the
// image are bash that parses (the hook's own check does not look into its
// here-documents).
func TestFVMInitScriptsParse(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	parts := strings.Split(fvmInitHook, "<<'FVMEOF'\n")
	n := 0
	for _, p := range parts[1:] {
		body, _, ok := strings.Cut(p, "\nFVMEOF\n")
		if !ok {
			t.Fatalf("a here-document without its end: %.80q", p)
		}
		shell := bash
		switch {
		case strings.HasPrefix(body, "#!/bin/sh\n"):
			if shell, err = exec.LookPath("sh"); err != nil {
				t.Fatal(err)
			}
		case !strings.HasPrefix(body, "#!/bin/bash\n"):
			continue // a unit file
		}
		n++
		if out, err := exec.Command(shell, "-n", "-c", body).CombinedOutput(); err != nil {
			t.Errorf("%v: %s\n%.200s", err, out, body)
		}
	}
	if n != 5 {
		t.Errorf("%d scripts, want fvm-init, fvm-net, fvm-final, wait-first-session and qemu-ga-port", n)
	}
	if !strings.Contains(leanHook, "cloud-init=disabled fvm.init net.ifnames=0") || !strings.HasSuffix(leanHook, fvmInitHook) {
		t.Error("the lean hook does not boot fvm-init or does not install it")
	}
}
