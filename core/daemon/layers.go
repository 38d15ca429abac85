package daemon

// Frozen disk layers (snapshots): they live while anything reads them. The
// host asks each driver to prune the ones nothing reads (every VM's chain,
// its journal, its snapshots and its origin: BasesInUse) after rm, snapshot
// rm, restore and image prune, and says what it kept and why.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/vm"
)

// layerReaders maps each frozen layer some VM reads (its disk, its
// snapshots, its origin) to those VMs, sorted.
func (d *Daemon) layerReaders() (map[string][]string, error) {
	out := map[string][]string{}
	dirs, err := os.ReadDir(d.opts.Layout.VMsDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	layers := filepath.Clean(d.opts.Layout.LayersDir())
	for _, e := range dirs {
		if !e.IsDir() || vm.ValidateName(e.Name()) != nil {
			continue
		}
		for _, drv := range d.opts.Drivers {
			files, err := drv.BasesInUse(d.opts.Layout.InstanceDir(e.Name()))
			if err != nil {
				return nil, fmt.Errorf("vm %s: which layers its disk reads: %w", e.Name(), err)
			}
			for _, f := range files {
				if filepath.Dir(f) == layers && !slices.Contains(out[f], e.Name()) {
					out[f] = append(out[f], e.Name())
				}
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out, nil
}

// layersIn are the frozen layers among files.
func (d *Daemon) layersIn(files []string) []string {
	layers := filepath.Clean(d.opts.Layout.LayersDir())
	var out []string
	for _, f := range files {
		if filepath.Dir(f) == layers && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// pruneLayers removes the layers nothing reads, with every driver that
// keeps some, and returns what it removed and freed.
func (d *Daemon) pruneLayers(ctx context.Context) (removed []string, freed int64, err error) {
	for _, drv := range d.opts.Drivers {
		s := driver.LayersOf(drv)
		if s == nil {
			continue
		}
		r, f, perr := s.PruneLayers(d.vmBases)
		removed, freed, err = append(removed, r...), freed+f, errors.Join(err, perr)
	}
	for _, p := range removed {
		d.log.Info("removed a disk layer nothing reads", "layer", p)
	}
	return removed, freed, err
}

// layersFreed prunes once a driver said layers may have fallen out of use
// on their own (a running VM's disk flattened: driver.LayerWatcher).
func (d *Daemon) layersFreed() {
	go func() {
		if d.bg.Err() != nil {
			return
		}
		if _, _, err := d.pruneLayers(d.bg); err != nil {
			d.log.Warn("prune disk layers after a flattening", "err", err)
		}
	}()
}

// keptNotes says, of the layers a VM or snapshot read before it went, which
// stay and who still reads them: one line per set of readers.
func (d *Daemon) keptNotes(before []string) []string {
	if len(before) == 0 {
		return nil
	}
	readers, err := d.layerReaders()
	if err != nil {
		return []string{fmt.Sprintf("which disk layers stay could not be told: %v", err)}
	}
	by := map[string]int{}
	var order []string
	for _, l := range before {
		if _, err := os.Stat(l); err != nil {
			continue
		}
		who := strings.Join(readers[l], ", ")
		if who == "" {
			who = "a snapshot in progress"
		}
		if by[who] == 0 {
			order = append(order, who)
		}
		by[who]++
	}
	var out []string
	for _, who := range order {
		n := by[who]
		out = append(out, fmt.Sprintf("kept %d disk layer%s that %s still read%s", n, plural(n), who, verbS(who)))
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// verbS conjugates "read" for one reader or several.
func verbS(who string) string {
	if strings.Contains(who, ",") {
		return ""
	}
	return "s"
}
