package qemu

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fvmhq/fvm/core/proc"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/vm"
)

// Shared folders. A read-write share is served by virtiofsd (QEMU's, from the
// host's packages), started before QEMU and ending with it; virtiofs needs the
// guest's memory in a shared backend. Where virtiofsd is missing or cannot run
// (it needs root for its sandbox), and for read-only shares, QEMU's built-in
// 9p serves instead: readonly=on makes QEMU refuse the guest's writes, so
// :ro holds on the host side whatever the guest mounts. The guest mounts each
// share by its tag at every boot (cloudinit's bootcmd: virtiofs, else 9p).

// Share is one shared folder on the command line.
type Share struct {
	Tag      string
	HostPath string
	ReadOnly bool
	Socket   string // virtiofsd's vhost-user socket; "" for 9p
}

// shareArgs is the command line of cfg's shares.
func shareArgs(cfg Config) []string {
	var a []string
	for i, s := range cfg.Shares {
		if s.Socket != "" {
			a = append(a,
				"-chardev", fmt.Sprintf("socket,id=vfs%d,path=%s", i, escape(s.Socket)),
				"-device", fmt.Sprintf("vhost-user-fs-pci,chardev=vfs%d,tag=%s", i, s.Tag))
			continue
		}
		opt := fmt.Sprintf("local,id=fs%d,path=%s,security_model=none", i, escape(s.HostPath))
		if s.ReadOnly {
			opt += ",readonly=on"
		}
		a = append(a, "-fsdev", opt, "-device", fmt.Sprintf("virtio-9p-pci,fsdev=fs%d,mount_tag=%s", i, s.Tag))
	}
	return a
}

// sharedMemory reports whether cfg needs guest memory that virtiofsd can map.
func sharedMemory(cfg Config) bool {
	for _, s := range cfg.Shares {
		if s.Socket != "" {
			return true
		}
	}
	return false
}

// virtiofsdCandidates are where distributions put QEMU's virtiofsd.
var virtiofsdCandidates = []string{"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd"}

// findVirtiofsd returns a usable virtiofsd, or why there is none.
func findVirtiofsd() (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New("virtiofsd needs root here: 9p serves instead")
	}
	for _, p := range virtiofsdCandidates {
		if isFile(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		return p, nil
	}
	return "", errors.New("no virtiofsd: 9p serves instead")
}

// planShares checks each mount's host directory and picks how it is served.
func planShares(mounts []vm.Mount, p paths) ([]Share, error) {
	var shares []Share
	vfsd, _ := findVirtiofsd()
	for i, m := range mounts {
		st, err := os.Stat(m.HostPath)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("share %s: the host directory %s is gone or not a directory: create it, or remove and recreate the VM without it", m, m.HostPath)
		}
		s := Share{Tag: vm.ShareTag(i), HostPath: m.HostPath, ReadOnly: m.ReadOnly}
		if vfsd != "" && !m.ReadOnly {
			s.Socket = store.SocketPath(p.dir, fmt.Sprintf("virtiofs-%d.sock", i))
		}
		shares = append(shares, s)
	}
	return shares, nil
}

// startShares starts a virtiofsd for each virtiofs share; the caller kills
// the returned processes if QEMU does not come up.
func startShares(shares []Share, p paths) ([]int, error) {
	var pids []int
	vfsd, _ := findVirtiofsd()
	for i, s := range shares {
		if s.Socket == "" {
			continue
		}
		pid, err := startVirtiofsd(vfsd, s, filepath.Join(p.dir, fmt.Sprintf("virtiofs-%d.log", i)))
		if err != nil {
			killPIDs(pids)
			return nil, fmt.Errorf("share %s: %w", s.HostPath, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// startVirtiofsd runs virtiofsd for s in its own session (it outlives the host
// with QEMU and exits when QEMU disconnects) and waits for its socket.
func startVirtiofsd(bin string, s Share, logPath string) (int, error) {
	os.Remove(s.Socket)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--socket-path="+s.Socket, "-o", "source="+s.HostPath, "-o", "cache=auto")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if exists(s.Socket) {
			return cmd.Process.Pid, nil
		}
		select {
		case <-exited:
			b, _ := store.ReadTail(logPath, 4<<10)
			return 0, fmt.Errorf("virtiofsd exited: %s", strings.TrimSpace(string(b)))
		default:
		}
	}
	cmd.Process.Kill()
	return 0, errors.New("virtiofsd did not open its socket within 5s")
}

// deadShare names the first of pids that is gone ("" when all live).
func deadShare(pids []int) string {
	for i, pid := range pids {
		if unix.Kill(pid, 0) != nil && !errors.Is(unix.Kill(pid, 0), unix.EPERM) {
			return "virtiofsd " + strconv.Itoa(i) + " (pid " + strconv.Itoa(pid) + ")"
		}
	}
	return ""
}

func killPIDs(pids []int) {
	for _, pid := range pids {
		if pid > 0 && isVirtiofsd(pid) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// isVirtiofsd checks that pid is still a virtiofsd before it is killed (pids are reused).
func isVirtiofsd(pid int) bool {
	exe, _, err := proc.Info(pid)
	return err == nil && strings.Contains(filepath.Base(exe), "virtiofsd")
}
