//go:build linux

package debianbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/image"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Build builds the Debian image and registers it, or returns the registered one when it
// was built from the same inputs (unless opts.Force). Temp files live in a work directory
// under Layout.BuildDir() and are removed whatever happens; the full tool output goes to
// BuildDir/<name>.log.
func Build(ctx context.Context, opts Options) (api.Image, error) {
	start := time.Now()
	host, err := vm.ParseArch(string(vm.HostArch()))
	if err != nil {
		return api.Image{}, fmt.Errorf("image build: this host's architecture: %w", err)
	}
	rel, err := findRelease(opts.Release)
	if err != nil {
		return api.Image{}, err
	}
	arch, err := findArch(opts.Arch, host)
	if err != nil {
		return api.Image{}, err
	}
	extra, err := ParsePackages(opts.Packages)
	if err != nil {
		return api.Image{}, err
	}
	name := opts.Name
	if name == "" {
		name = ImageName(rel.Version, arch.Arch, host)
	}
	if err := image.ValidateName(name); err != nil {
		return api.Image{}, err
	}
	recipeName, err := checkRecipe(opts.Recipe)
	if err != nil {
		return api.Image{}, err
	}
	rootSize := opts.RootSize
	if rootSize == 0 {
		rootSize = defaultRootSize
	}
	if rootSize < 1<<30 {
		return api.Image{}, fmt.Errorf("image build: root size %d bytes is too small: use at least 1 GiB", rootSize)
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	reg := image.Registry{Layout: opts.Layout}
	srcFile, srcData, err := pickSources(opts.Sources, rel.Suite, hostSourceCandidates)
	if err != nil {
		return api.Image{}, fmt.Errorf("image build: apt sources: %w", err)
	}
	rec := newRecipe(recipeInput{Release: rel, Arch: arch, Extra: extra, Sources: srcData, RootSize: rootSize, Recipe: recipeName})
	key := rec.key()

	if err := store.MkdirPrivate(opts.Layout.BuildDir()); err != nil { // private: its root trees are world-readable inside
		return api.Image{}, fmt.Errorf("image build: %w", err)
	}
	lock, err := store.TryLock(filepath.Join(opts.Layout.BuildDir(), name+".lock"))
	if errors.Is(err, store.ErrLocked) {
		return api.Image{}, fmt.Errorf("image %q: %w: wait for it to finish", name, ErrBusy)
	}
	if err != nil {
		return api.Image{}, fmt.Errorf("image build: %w", err)
	}
	defer lock.Unlock()

	// Checked under the lock, so a build that just finished elsewhere counts.
	if img, err := reg.Get(name); err == nil && img.Source == SourcePrefix+key && !opts.Force {
		fmt.Fprintf(logw, "image %s is up to date (built %s from the same inputs); --force rebuilds it\n",
			name, img.CreatedAt.Local().Format(time.DateTime))
		return img, nil
	}
	tools, err := findTools(arch, string(host), hostToolEnv())
	if err != nil {
		return api.Image{}, err
	}

	// Under the lock no other build of this name runs: work directories left by a
	// killed one are stale.
	for _, d := range staleWorkDirs(opts.Layout.BuildDir(), name) {
		if err := removeWork(d); err != nil {
			return api.Image{}, fmt.Errorf("image build: %w", err)
		}
		fmt.Fprintf(logw, "removed work files of an interrupted build: %s\n", d)
	}
	work, err := os.MkdirTemp(opts.Layout.BuildDir(), name+workSuffix)
	if err != nil {
		return api.Image{}, fmt.Errorf("image build: %w", err)
	}
	logPath := filepath.Join(opts.Layout.BuildDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		removeWork(work)
		return api.Image{}, fmt.Errorf("image build: %w", err)
	}
	b := &builder{ctx: ctx, tools: tools, work: work, log: logFile, logPath: logPath, out: logw}
	img, err := b.build(reg, name, rec, key, srcFile)
	logFile.Close()
	if rerr := removeWork(work); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return api.Image{}, fmt.Errorf("image %q: build: %w", name, err)
	}
	fmt.Fprintf(logw, "built image %s (%s, %d MiB) in %s\n", name, img.Digest, img.Size>>20, since(start))
	return img, nil
}

// CheckHost says what this host lacks to build images of arch ("" for the host's),
// or nil when it has everything (`fvm check`).
func CheckHost(arch vm.Arch) error {
	host, err := vm.ParseArch(string(vm.HostArch()))
	if err != nil {
		return err
	}
	a, err := findArch(arch, host)
	if err != nil {
		return err
	}
	_, err = findTools(a, string(host), hostToolEnv())
	return err
}

// debCacheDir (under BuildDir) keeps the .deb files of the last build of a suite
// and arch; legacyDebCacheDir is where builds of Debian 12 amd64 kept them before.
func debCacheDir(suite string, arch vm.Arch) string { return "debs-" + suite + "-" + string(arch) }

const legacyDebCacheDir = "debs"

// workSuffix plus random digits follows the image name in work directory names.
const workSuffix = ".work-"

// staleWorkDirs lists the work directories of earlier builds of name. The match is
// exact, so the directories of an image whose name merely starts with name are kept.
func staleWorkDirs(buildDir, name string) []string {
	re := regexp.MustCompile("^" + regexp.QuoteMeta(name+workSuffix) + "[0-9]+$")
	ents, _ := os.ReadDir(buildDir)
	var out []string
	for _, e := range ents {
		if e.IsDir() && re.MatchString(e.Name()) {
			out = append(out, filepath.Join(buildDir, e.Name()))
		}
	}
	return out
}

type builder struct {
	ctx     context.Context
	tools   map[string]string
	work    string
	log     *os.File
	logPath string
	out     io.Writer
}

func (b *builder) path(name string) string { return filepath.Join(b.work, name) }

func (b *builder) build(reg image.Registry, name string, rec recipe, key, srcFile string) (api.Image, error) {
	rootUUID := newUUID()
	layout := newDiskLayout(rec.ESPSize, rec.RootSize)
	tarball, rootDir, rootImg := b.path("rootfs.tar"), b.path("rootfs"), b.path("root.img")
	espImg, efi := b.path("esp.img"), b.path(rec.EFIFile)
	raw, out := b.path("disk.raw"), b.path("disk.qcow2")

	from := srcFile
	if from == "" {
		from = "mmdebstrap's default mirror"
	}
	paths := bootstrapPaths{Target: tarball, EFI: efi, Sources: srcFile}
	buildDir := filepath.Dir(b.work)
	debCache, debsOut := filepath.Join(buildDir, debCacheDir(rec.Suite, rec.Arch)), b.path("debs")
	if rec.Suite == "bookworm" && rec.Arch == vm.AMD64 && !dirExists(debCache) {
		os.Rename(filepath.Join(buildDir, legacyDebCacheDir), debCache) // what earlier fvm builds kept
	}
	// mmdebstrap splits special hooks on spaces: no package cache for such paths. Builds
	// of other image names may share the cache: one at a time uses it, the others go
	// without rather than wait.
	if !strings.ContainsAny(debCache+b.work, " \t\n") {
		if cacheLock, err := store.TryLock(debCache + ".lock"); err == nil {
			defer cacheLock.Unlock()
			if dirExists(debCache) {
				paths.DebsIn = debCache
			}
			if err := os.Mkdir(debsOut, 0o755); err != nil {
				return api.Image{}, err
			}
			paths.DebsOut = debsOut
		}
	}
	what := fmt.Sprintf("mmdebstrap %s %s, %d packages, from %s", rec.Suite, rec.Arch, len(rec.Packages), from)
	if _, foreign := b.tools["arch-test"]; foreign {
		what += ", under qemu-user emulation (slow)"
	}
	err := b.phase("bootstrap", what, func() error {
		return b.run("", "mmdebstrap", rec.mmdebstrapArgs(paths, rootUUID)...)
	})
	if err != nil {
		return api.Image{}, err
	}
	if paths.DebsOut != "" {
		// Keep exactly the packages this build used for the next one.
		if err := removeTree(debCache); err == nil {
			os.Rename(debsOut, debCache)
		}
	}
	err = b.phase("rootfs", fmt.Sprintf("ext4 root filesystem (%d MiB) from the tarball", rec.RootSize>>20), func() error {
		if err := os.Mkdir(rootDir, 0o755); err != nil {
			return err
		}
		if err := os.Truncate(createEmpty(rootImg), rec.RootSize); err != nil {
			return err
		}
		for _, argv := range rootfsCommands(b.tools, tarball, rootDir, rootImg, rootUUID) {
			if err := b.run("", argv[0], argv[1:]...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return api.Image{}, err
	}
	// The tarball and tree are large: free the space before the next copies.
	os.Remove(tarball)
	if err := removeTree(rootDir); err != nil {
		return api.Image{}, err
	}
	err = b.phase("esp", fmt.Sprintf("EFI system partition (%d MiB) with Debian %s's GRUB as /EFI/BOOT/%s", rec.ESPSize>>20, rec.Release, rec.EFIFile), func() error {
		if !isFile(efi) {
			return fmt.Errorf("the GRUB hook left no %s", efi)
		}
		if err := b.run("", "mkfs.vfat", "-C", "-n", espLabel, "-i", newVolumeID(), espImg, strconv.FormatInt(rec.ESPSize>>10, 10)); err != nil {
			return err
		}
		if err := b.run("", "mmd", "-i", espImg, "::/EFI", "::/EFI/BOOT"); err != nil {
			return err
		}
		return b.run("", "mcopy", "-i", espImg, efi, "::/EFI/BOOT/"+rec.EFIFile)
	})
	if err != nil {
		return api.Image{}, err
	}
	err = b.phase("disk", fmt.Sprintf("GPT disk (%d MiB): ESP, then root last so it can grow", layout.DiskSize>>20), func() error {
		if err := os.Truncate(createEmpty(raw), layout.DiskSize); err != nil {
			return err
		}
		if err := b.run(layout.sfdiskScript(), "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", raw); err != nil {
			return err
		}
		if err := b.run("", "dd", ddArgs(espImg, raw, layout.ESPOffset)...); err != nil {
			return err
		}
		return b.run("", "dd", ddArgs(rootImg, raw, layout.RootOffset)...)
	})
	if err != nil {
		return api.Image{}, err
	}
	os.Remove(rootImg)
	err = b.phase("qcow2", "convert to qcow2", func() error {
		return b.run("", "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, out)
	})
	if err != nil {
		return api.Image{}, err
	}
	var img api.Image
	err = b.phase("register", "hash into the image cache and register as "+name, func() error {
		var err error
		img, err = reg.ImportFile(b.ctx, out, name, image.ImportOptions{
			Version: rec.Release, Arch: rec.Arch, Source: SourcePrefix + key, Move: true,
		})
		return err
	})
	return img, err
}

// ddArgs copies src into dst at offset (a multiple of 1 MiB) without truncating dst,
// skipping zero blocks so the disk stays sparse.
func ddArgs(src, dst string, offset int64) []string {
	return []string{"if=" + src, "of=" + dst, "bs=1M", "seek=" + strconv.FormatInt(offset/alignment, 10),
		"conv=notrunc,sparse", "status=none"}
}

// phase runs fn between a start line and a line with its duration.
func (b *builder) phase(name, what string, fn func() error) error {
	start := time.Now()
	fmt.Fprintf(b.out, "%s: %s\n", name, what)
	fmt.Fprintf(b.log, "==> %s: %s\n", name, what)
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(b.out, "%s: done in %s\n", name, since(start))
	return nil
}

// toolGrace is how long an interrupted tool may take to clean up after SIGTERM.
const toolGrace = 10 * time.Second

// run runs a tool (by name, or by path) in the work directory with stdin, its output
// going to the build log; a failure names the tool and its last line of output.
func (b *builder) run(stdin, name string, args ...string) error {
	if err := b.ctx.Err(); err != nil {
		return err
	}
	exe := b.tools[name]
	if exe == "" {
		exe = name
	}
	cmd := exec.CommandContext(b.ctx, exe, args...)
	// The tool runs in a process group of its own, so that an interrupted
	// build (Ctrl-C, SIGTERM) stops it and everything it started (apt, dpkg,
	// maintainer scripts), not mmdebstrap alone. SIGTERM first: mmdebstrap then
	// unmounts /proc and /sys from its chroot and removes its temp directory
	// before exiting; whatever of the group is left after toolGrace is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = toolGrace
	if name == "mmdebstrap" && os.Geteuid() == 0 {
		// Root mode mounts /proc, /sys and /dev in the chroot: keep those mounts in a
		// private mount namespace, so no other process sees them and they vanish with
		// mmdebstrap even if it is killed. (Other modes use a namespace of their own.)
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	}
	cmd.Dir = b.work
	cmd.Env = append(os.Environ(), "TMPDIR="+toolTempDir(name, os.Geteuid(), b.work), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	tail := &lastLine{}
	cmd.Stdout = io.MultiWriter(b.log, tail)
	cmd.Stderr = cmd.Stdout
	fmt.Fprintf(b.log, "$ %s %s\n", name, shellQuote(args))
	if err := cmd.Run(); err != nil {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what is left of an interrupted or failed tool's group
		}
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		msg := name + ": " + err.Error()
		if l := tail.String(); l != "" {
			msg += ": " + l
		}
		return fmt.Errorf("%s (full log: %s)", msg, b.logPath)
	}
	return nil
}

// lastLine keeps the last non-empty line written to it, for one-line errors.
type lastLine struct{ cur, last []byte }

func (l *lastLine) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' || c == '\r' {
			if len(strings.TrimSpace(string(l.cur))) > 0 {
				l.last = append(l.last[:0], l.cur...)
			}
			l.cur = l.cur[:0]
			continue
		}
		if len(l.cur) < 512 {
			l.cur = append(l.cur, c)
		}
	}
	return len(p), nil
}

func (l *lastLine) String() string {
	if s := strings.TrimSpace(string(l.cur)); s != "" {
		return s
	}
	return strings.TrimSpace(string(l.last))
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func createEmpty(p string) string {
	if f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err == nil {
		f.Close()
	}
	return p
}

// removeWork deletes the work directory unless something is still mounted inside it
// (a killed mmdebstrap in root mode): deleting through a bind mount of /dev would
// delete the host's device nodes.
func removeWork(dir string) error {
	if m := mountsUnder(dir); len(m) > 0 {
		return fmt.Errorf("work directory %s still has mounts (%s): unmount them, then remove it", dir, strings.Join(m, ", "))
	}
	return removeTree(dir)
}

// removeTree is os.RemoveAll that first makes read-only directories (a root tree
// extracted without root) writable again.
// toolTempDir is the TMPDIR a build tool gets: the build's work dir, except
// for mmdebstrap run by a user who is not root (unshare mode), whose
// namespace's root (a subordinate uid) cannot reach into the private cache
// dir: /tmp is mmdebstrap's own choice then, and it removes its dir there.
func toolTempDir(tool string, euid int, work string) string {
	if tool == "mmdebstrap" && euid != 0 {
		return "/tmp"
	}
	return work
}

func removeTree(dir string) error {
	if os.RemoveAll(dir) == nil {
		return nil
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove work files: %w", err)
	}
	return nil
}

func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 for space) of /proc/self/mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }
