// Package store owns fvm's backend-neutral on-disk layout: the top-level
// directories and the files every VM has whatever its backend. Each driver
// names its own files in the instance directory (its disk, pid file, sockets,
// logs). Every saved file goes through WriteFileAtomic; cross-process
// exclusion uses flock.
package store

import (
	"os"
	"path/filepath"
	"runtime"
)

// File names inside an instance directory that every backend has. The disk
// is the driver's (its name says its format: disk.qcow2, disk.raw).
const (
	SpecFile       = "spec.json"    // vm.Spec, the user's intent
	SeedFile       = "seed.iso"     // cloud-init NoCloud seed (cidata)
	EFIVarsFile    = "efi-vars.fd"  // per-VM UEFI variable store, in the backend's format
	SerialLog      = "serial.log"   // serial console output
	RuntimeFile    = "runtime.json" // facts of the current run (Runtime)
	HostKeyFile    = "ssh_host_ed25519_key"
	HostKeyPubFile = "ssh_host_ed25519_key.pub"
	KnownHostsFile = "known_hosts" // for plain ssh via `fvm ssh-config`
	InstanceIDFile = "instance-id" // the seed's cloud-init instance id
	StartFile      = "start.json"  // how the last start went (api.StartReport), written by the host
	LockFile       = "lock"
	// SnapshotsDir holds the VM's named snapshots, one directory per tag
	// (core/snapshot): they go with the VM; the frozen disk layers they name
	// live in Layout.LayersDir, as long as anything reads them.
	SnapshotsDir = "snapshots"
	// OriginDir is the snapshot a clone was made from (fvm clone), its own
	// copy: what its first start restores and re-identifies.
	OriginDir = "origin"
)

// File names in the top-level directories.
const (
	ConfigFileName = "config.yaml"
	SocketName     = "fvm.sock"
	DaemonLogName  = "daemon.log"
	DaemonLockName = "daemon.lock"
	UserKeyName    = "id_ed25519" // the key fvm generates and keeps for SSH into its VMs
)

// Layout is where everything lives. FVM_HOME roots all of it (tests use that);
// otherwise XDG directories on Linux and ~/Library/... on macOS.
type Layout struct {
	ConfigDir string // config.yaml
	CacheDir  string // downloaded and built base images
	DataDir   string // instances, local image registry, fvm's ssh key
	RunDir    string // socket, daemon log and lock (0700)
}

// HomeLayout is the layout of a state dir in one place, as FVM_HOME=home gives.
func HomeLayout(home string) Layout {
	return Layout{
		ConfigDir: home,
		CacheDir:  filepath.Join(home, "cache"),
		DataDir:   filepath.Join(home, "data"),
		RunDir:    filepath.Join(home, "run"),
	}
}

// DefaultLayout derives the layout from FVM_HOME or the platform defaults.
func DefaultLayout() Layout {
	if h := os.Getenv("FVM_HOME"); h != "" {
		h, _ = filepath.Abs(h)
		return HomeLayout(h)
	}
	home, _ := os.UserHomeDir()
	if runtime.GOOS == "darwin" {
		return darwinLayout(home, func(p string) bool { _, err := os.Stat(p); return err == nil })
	}
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return filepath.Join(home, def)
	}
	run := filepath.Join(env("XDG_STATE_HOME", ".local/state"), "fvm")
	if xr := os.Getenv("XDG_RUNTIME_DIR"); xr != "" {
		run = filepath.Join(xr, "fvm")
	}
	return Layout{
		ConfigDir: filepath.Join(env("XDG_CONFIG_HOME", ".config"), "fvm"),
		CacheDir:  filepath.Join(env("XDG_CACHE_HOME", ".cache"), "fvm"),
		DataDir:   filepath.Join(env("XDG_DATA_HOME", ".local/share"), "fvm"),
		RunDir:    run,
	}
}

// darwinLayout is macOS's layout. Base disks and warm snapshots are no cache:
// VMs' disks are overlays on them, and cache cleaners empty ~/Library/Caches.
// So they live with the data, in Application Support/fvm/cache. An install
// from before keeps its ~/Library/Caches/fvm (its VMs' overlays name paths
// there); `fvm check` says so.
func darwinLayout(home string, exists func(string) bool) Layout {
	lib := filepath.Join(home, "Library")
	support := filepath.Join(lib, "Application Support", "fvm")
	cache := filepath.Join(support, "cache")
	if old := filepath.Join(lib, "Caches", "fvm"); exists(old) && !exists(cache) {
		cache = old
	}
	return Layout{
		ConfigDir: support,
		CacheDir:  cache,
		DataDir:   support,
		// Short on purpose: sun_path is limited to 104 bytes on macOS.
		RunDir: filepath.Join(home, ".fvm", "run"),
	}
}

// InLibraryCaches reports whether the base disks are in ~/Library/Caches
// (an install from before they moved), where cache cleaners delete them.
func (l Layout) InLibraryCaches(home string) bool {
	return l.CacheDir == filepath.Join(home, "Library", "Caches", "fvm")
}

func (l Layout) ConfigFile() string   { return filepath.Join(l.ConfigDir, ConfigFileName) }
func (l Layout) SocketPath() string   { return filepath.Join(l.RunDir, SocketName) }
func (l Layout) DaemonLog() string    { return filepath.Join(l.RunDir, DaemonLogName) }
func (l Layout) DaemonLock() string   { return filepath.Join(l.RunDir, DaemonLockName) }
func (l Layout) VMsDir() string       { return filepath.Join(l.DataDir, "vms") }
func (l Layout) ImagesDir() string    { return filepath.Join(l.DataDir, "images") } // local image registry (json per image)
func (l Layout) BasesDir() string     { return filepath.Join(l.CacheDir, "bases") } // base disks named by digest
func (l Layout) BuildDir() string     { return filepath.Join(l.CacheDir, "build") } // image build work space
func (l Layout) DownloadsDir() string { return filepath.Join(l.CacheDir, "downloads") }
func (l Layout) WarmDir() string      { return filepath.Join(l.CacheDir, "warm") }    // warm snapshots, one dir each
func (l Layout) UploadsDir() string   { return filepath.Join(l.CacheDir, "uploads") } // files clients uploaded, one dir per digest
func (l Layout) SSHDir() string       { return filepath.Join(l.DataDir, "ssh") }
func (l Layout) LayersDir() string    { return filepath.Join(l.DataDir, "layers") } // frozen disk layers of snapshots, shared by VMs (0700)
func (l Layout) UserKey() string      { return filepath.Join(l.SSHDir(), UserKeyName) }

// InstanceDir is the directory of the named VM.
func (l Layout) InstanceDir(name string) string { return filepath.Join(l.VMsDir(), name) }

// EnsureRunDir creates the run directory private to the user (0700), fixing looser modes.
func (l Layout) EnsureRunDir() error {
	if err := os.MkdirAll(l.RunDir, 0o700); err != nil {
		return err
	}
	return os.Chmod(l.RunDir, 0o700)
}
