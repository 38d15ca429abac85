// Package snapshot is the host's bookkeeping of named snapshots (fvm
// snapshot, fvm clone): where they live, what their snapshot.json says, tags,
// listing, and leftovers of interrupted ones.
//
// A named snapshot is a directory vms/NAME/snapshots/TAG/ holding the
// driver's files (the frozen disk, as a link to a layer that outlives the VM;
// with memory, the saved state and firmware variables) and snapshot.json,
// a superset of a warm snapshot's: so a clone of it takes the warm-clone path
// as it is (core/warm: the template is the snapshot's VM, its host key and
// instance id those to replace). A clone keeps its own copy of the snapshot
// it was made from (vms/NEW/origin/: hard links), so its first start never
// depends on the source VM still being there.
package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/warm"
)

// Info is snapshot.json of a named snapshot.
type Info struct {
	warm.Info
	Tag string `json:"tag"`
	// VM is the VM it was taken of (the hostname in its memory: warm.Info.Hostname too).
	VM           string  `json:"vm"`
	PauseSeconds float64 `json:"pauseSeconds,omitempty"` // how long the guest was paused
	Notice       string  `json:"notice,omitempty"`       // what the user was told when it was taken
}

// Memory says whether the snapshot holds the VM's memory.
func (i Info) Memory() bool { return !i.DiskOnly }

// tmpPrefix names a snapshot being made: a crash leaves one, CleanStale removes it.
const tmpPrefix = ".tmp-"

var tagRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateTag checks a tag: letters, digits, dots, dashes and underscores,
// starting with a letter or digit, at most 64 characters.
func ValidateTag(tag string) error {
	if !tagRe.MatchString(tag) {
		return fmt.Errorf("snapshot tag %q is not valid: use letters, digits, '.', '-' and '_' (starting with a letter or digit, at most 64)", tag)
	}
	return nil
}

// DefaultTag is the tag of a snapshot taken without one: the time, to the
// second (UTC), e.g. 20261205-213000.
func DefaultTag(now time.Time) string { return now.UTC().Format("20060102-150405") }

// DirOf is where the VM in instDir keeps its snapshots.
func DirOf(instDir string) string { return filepath.Join(instDir, store.SnapshotsDir) }

// Path is the directory of the snapshot tag of the VM in instDir.
func Path(instDir, tag string) string { return filepath.Join(DirOf(instDir), tag) }

// NewDir makes the directory a snapshot is made in (hidden until Commit).
func NewDir(instDir, tag string) (string, error) {
	parent := DirOf(instDir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(parent, tmpPrefix+tag+"-")
}

// Commit writes info into the snapshot made in tmp and puts it in place
// under its tag, never over another snapshot.
func Commit(tmp string, info Info) (string, error) {
	if err := store.WriteJSON(filepath.Join(tmp, warm.InfoFile), info); err != nil {
		return "", err
	}
	final := filepath.Join(filepath.Dir(tmp), info.Tag)
	if err := store.RenameNoReplace(tmp, final); err != nil {
		return "", err
	}
	store.SyncDir(filepath.Dir(tmp))
	return final, nil
}

// Load reads a snapshot's description.
func Load(dir string) (Info, error) {
	var i Info
	err := store.ReadJSON(filepath.Join(dir, warm.InfoFile), &i)
	return i, err
}

// List returns the VM's snapshots, oldest first. Directories without a
// readable snapshot.json are not snapshots (an interrupted one: CleanStale).
func List(instDir string) ([]api.Snapshot, error) {
	ents, err := os.ReadDir(DirOf(instDir))
	if errors.Is(err, fs.ErrNotExist) {
		return []api.Snapshot{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []api.Snapshot{}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		dir := filepath.Join(DirOf(instDir), e.Name())
		info, err := Load(dir)
		if err != nil {
			continue
		}
		out = append(out, Describe(dir, info))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].Tag < out[j].Tag
	})
	return out, nil
}

// Describe is a snapshot as the API shows it.
func Describe(dir string, i Info) api.Snapshot {
	return api.Snapshot{
		VM: i.VM, Tag: i.Tag, Dir: dir, CreatedAt: i.CreatedAt, Memory: i.Memory(), Bytes: Bytes(dir),
		PauseSeconds: i.PauseSeconds, Notice: i.Notice, Backend: i.Backend,
	}
}

// Bytes is what a snapshot takes on disk: its own files and the frozen disk
// it links to (that layer's own data, not what it reads).
func Bytes(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		st, err := os.Stat(filepath.Join(dir, e.Name())) // follows the link to the layer
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			n += s.Blocks * 512
		} else {
			n += st.Size()
		}
	}
	return n
}

// Remove deletes a snapshot directory (its layer stays until nothing reads
// it), out of sight first: a crash part way leaves a temporary that
// CleanStale removes, never a snapshot listed without its disk.
func Remove(dir string) error {
	return store.RemoveTree(dir, tmpPrefix)
}

// CleanStale removes snapshots that a crash interrupted (their layer, if it
// was made, is the VM's own: its driver settles that) in every VM of vmsDir.
func CleanStale(vmsDir string) (removed []string) {
	dirs, _ := filepath.Glob(filepath.Join(vmsDir, "*", store.SnapshotsDir, tmpPrefix+"*"))
	for _, d := range dirs {
		if Remove(d) == nil {
			removed = append(removed, d)
		}
	}
	return removed
}

// LinkTree copies the snapshot in src to dst (new) as hard links of its
// files, which are never written in place, and copies of its symbolic links:
// a clone's own copy of the snapshot it is made from, for nothing.
func LinkTree(src, dst string) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(s)
			if err == nil {
				err = os.Symlink(target, d)
			}
			if err != nil {
				return err
			}
		case e.Type().IsRegular():
			if err := os.Link(s, d); err != nil {
				return fmt.Errorf("link %s: %w", s, err)
			}
		}
	}
	return nil
}
