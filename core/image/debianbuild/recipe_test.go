package debianbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestRecipeKey(t *testing.T) {
	base := newRecipe([]byte("deb http://deb.debian.org/debian bookworm main\n"), defaultRootSize)
	if k := base.key(); len(k) != 64 || k != newRecipe([]byte("deb http://deb.debian.org/debian bookworm main\n"), defaultRootSize).key() {
		t.Fatalf("key %q is not a stable SHA-256", k)
	}
	changed := map[string]recipe{}
	r := base
	r.Sources = "deb http://mirror.example/debian bookworm main\n"
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
	r.Suite = "trixie"
	changed["suite"] = r
	for what, c := range changed {
		if c.key() == base.key() {
			t.Errorf("changing the %s keeps the cache key", what)
		}
	}
}

func TestRecipePackagesSorted(t *testing.T) {
	r := newRecipe(nil, defaultRootSize)
	if !slices.IsSorted(r.Packages) {
		t.Fatal("packages are not sorted: the key would depend on list order")
	}
	for _, p := range []string{"linux-image-amd64", "systemd-sysv", "openssh-server", "cloud-init", "cloud-guest-utils",
		"qemu-guest-agent", "ifupdown", "isc-dhcp-client", "sudo", "ca-certificates"} {
		if !slices.Contains(r.Packages, p) {
			t.Errorf("package %s missing from the recipe", p)
		}
	}
}

func TestMmdebstrapArgs(t *testing.T) {
	r := newRecipe(nil, defaultRootSize)
	uuid := "11111111-2222-4333-8444-555555555555"
	args := r.mmdebstrapArgs(bootstrapPaths{Target: "/w/rootfs.tar", Sources: "/etc/apt/sources.list.d/debian.sources"}, uuid)
	for _, want := range []string{"--mode=auto", "--variant=minbase", "--arch=amd64", "--format=tar"} {
		if !slices.Contains(args, want) {
			t.Errorf("argv lacks %s: %q", want, args)
		}
	}
	n := len(args)
	if got := args[n-3:]; !slices.Equal(got, []string{"bookworm", "/w/rootfs.tar", "/etc/apt/sources.list.d/debian.sources"}) {
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
	var hook, include, ess string
	for _, a := range args {
		if s, ok := strings.CutPrefix(a, "--essential-hook="); ok {
			ess = s
		}
		if s, ok := strings.CutPrefix(a, "--customize-hook="); ok {
			hook = s
		}
		if s, ok := strings.CutPrefix(a, "--include="); ok {
			include = s
		}
	}
	for _, want := range []string{"MODULES=list", "manual_add_modules virtio_pci virtio_blk", "chmod 0755"} {
		if !strings.Contains(ess, want) {
			t.Errorf("essential hook lacks %q", want)
		}
	}
	if strings.Split(include, ",")[0] == "" || strings.Contains(include, " ") {
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

	p, b, err := pickSources("", []string{filepath.Join(d, "missing"), ubuntu, deb822})
	if err != nil || p != deb822 || !strings.Contains(string(b), "bookworm") {
		t.Fatalf("pickSources = %q, %v; want the bookworm file", p, err)
	}
	if p, b, _ := pickSources("", []string{ubuntu}); p != "" || b != nil {
		t.Fatalf("a non-Debian host must fall back to mmdebstrap's default, got %q", p)
	}
	if p, _, err := pickSources(ubuntu, []string{deb822}); err != nil || p != ubuntu {
		t.Fatalf("an explicit file must win, got %q, %v", p, err)
	}
	if _, _, err := pickSources(filepath.Join(d, "nope"), nil); err == nil {
		t.Fatal("a missing explicit sources file must fail")
	}
}

func TestGrubConfig(t *testing.T) {
	uuid := "0b3e6a3c-8d7f-4e5e-9a51-2a1c3f0e9d11"
	cfg := grubConfig(uuid)
	for _, want := range []string{
		"search --no-floppy --fs-uuid --set=root " + uuid,
		"linux /vmlinuz root=UUID=" + uuid + " ro console=tty0 console=ttyS0,115200",
		"initrd /initrd.img",
		"set timeout=0",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "@") {
		t.Errorf("grub.cfg keeps a placeholder:\n%s", cfg)
	}
	args := grubMkstandaloneArgs("/w/BOOTX64.EFI", "/w/grub.cfg")
	if !slices.Contains(args, "x86_64-efi") || args[len(args)-1] != "boot/grub/grub.cfg=/w/grub.cfg" {
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
