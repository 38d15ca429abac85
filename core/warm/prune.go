package warm

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/fvmhq/fvm/core/store"
)

// Remove deletes the snapshots that no VM's disk reads (used: InUse) and that
// are either made on one of bases or, with stale, no longer current; it
// returns what it removed and freed.
func (p *Pool) Remove(ctx context.Context, used map[string]bool, bases map[string]bool, stale bool) (removed []string, freed int64) {
	dirs, _ := filepath.Glob(filepath.Join(p.opts.Layout.WarmDir(), "*"))
	for _, dir := range dirs {
		info, err := Load(dir)
		if err != nil || readByVM(used, dir) {
			continue
		}
		if !bases[info.Base] && !(stale && !p.current(ctx, dir, info)) {
			continue
		}
		n := dirBytes(dir)
		if err := removeTree(dir); err != nil {
			p.opts.Log.Warn("remove warm snapshot", "dir", dir, "err", err)
			continue
		}
		removed, freed = append(removed, dir), freed+n
	}
	return removed, freed
}

// readByVM says whether some VM's disk reads a file of the snapshot in dir.
func readByVM(used map[string]bool, dir string) bool {
	for p := range used {
		if strings.HasPrefix(p, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// CleanBuilds removes what crashed hosts left of snapshot builds: their
// template VM, if it still runs, and the directory. Only the one host of a
// state directory builds, so at its start every build is stale.
func (p *Pool) CleanBuilds(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(p.opts.Layout.WarmDir(), buildPrefix+"*"))
	for _, dir := range dirs {
		inst := &store.Instance{Dir: dir}
		store.ReadJSON(inst.Path(store.SpecFile), &inst.Spec)
		if v, err := p.opts.Bind(ctx, &inst.Spec); err == nil {
			v.Delete(ctx, inst)
		}
		if err := removeTree(dir); err != nil {
			p.opts.Log.Warn("remove an unfinished warm snapshot", "dir", dir, "err", err)
		}
	}
}
