package host

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fvmhq/fvm/core/store"
)

// VM disks, base disks and warm snapshots are tens of GiB that change all the
// time and are rebuilt from images: Time Machine should not copy them every
// hour. Snapshots' disk layers go with the VM disks they are read by (a layer
// without the VM directory that names it restores nothing). On macOS each directory is excluded once (`tmutil addexclusion`, a
// sticky exclusion kept in the directory's extended attributes, which moves
// with it); directories that carry the exclusion already are left alone.

// backupExcludeXattr is where Time Machine's sticky exclusion lives.
const backupExcludeXattr = "com.apple.metadata:com_apple_backup_excludeItem"

// backupDirs are the directories to keep out of backups.
func backupDirs(l store.Layout) []string {
	return []string{l.VMsDir(), l.BasesDir(), l.WarmDir(), l.LayersDir()}
}

// excludeOnce makes each dir and excludes it unless excluded says it is; it
// returns what it excluded and the errors it met.
func excludeOnce(dirs []string, excluded func(string) bool, exclude func(string) error) (done []string, errs []error) {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			errs = append(errs, err)
			continue
		}
		if excluded(d) {
			continue
		}
		if err := exclude(d); err != nil {
			errs = append(errs, fmt.Errorf("exclude %s from Time Machine: %w", d, err))
			continue
		}
		done = append(done, d)
	}
	return done, errs
}

// excludeFromBackups runs excludeOnce with tmutil on macOS, in the
// background: a host's start does not wait for it.
func excludeFromBackups(l store.Layout, log *slog.Logger) {
	if runtime.GOOS != "darwin" {
		return
	}
	go func() {
		done, errs := excludeOnce(backupDirs(l), hasXattr, tmutilExclude)
		for _, d := range done {
			log.Info("excluded from Time Machine backups", "dir", d)
		}
		for _, err := range errs {
			log.Warn("backups", "err", err)
		}
	}()
}

func hasXattr(dir string) bool {
	_, err := unix.Getxattr(dir, backupExcludeXattr, nil)
	return err == nil
}

func tmutilExclude(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "tmutil", "addexclusion", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}
