package libvirt

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fvmhq/fvm/core/config"
)

// Placement is the one thing fvm decides across several libvirt hosts
// (libvirt.hosts): a new VM goes to the daemon with the most free memory
// that fits it, by libvirt's own node statistics. Everything else is libvirt's.

// candidate is one daemon as placement sees it.
type candidate struct {
	Host config.LibvirtHost
	Free uint64 // bytes
	Err  error  // why it cannot be asked (unreachable, no QEMU for the arch)
}

// tieMargin: free memory within this of the best counts as a tie. Each
// daemon's statistics are read at another moment and move by megabytes in
// between (two daemons on one machine never tie exactly); a placement that
// flips on that noise is one nobody can predict.
const tieMargin = 256 << 20

// pick returns the reachable candidate with the most free memory, if it fits
// needMiB; an error that names every host and why otherwise. Ties (within
// tieMargin) go to the first (hosts are sorted by name).
func pick(cands []candidate, needMiB int) (config.LibvirtHost, error) {
	need := uint64(needMiB) << 20
	best := -1
	for i, c := range cands {
		if c.Err == nil && (best < 0 || c.Free > cands[best].Free+tieMargin) {
			best = i
		}
	}
	if best >= 0 && cands[best].Free >= need {
		return cands[best].Host, nil
	}
	var why []string
	for _, c := range cands {
		label := c.Host.Name
		if label == "" {
			label = c.Host.URI
		}
		if c.Err != nil {
			why = append(why, fmt.Sprintf("%s: %v", label, c.Err))
		} else {
			why = append(why, fmt.Sprintf("%s has %s free", label, sizeText(int64(c.Free))))
		}
	}
	if best < 0 {
		return config.LibvirtHost{}, fmt.Errorf("no libvirt host answers (%s)", strings.Join(why, "; "))
	}
	return config.LibvirtHost{}, fmt.Errorf("no libvirt host has %s of memory free for it (%s): free some or ask for less (--memory)", sizeText(int64(need)), strings.Join(why, "; "))
}

// place picks the daemon for a new VM: the one --on names, the only one
// configured, or the one with the most free memory. The chosen host's facts
// come back with it.
func (d *Driver) place(ctx context.Context, cfg config.Libvirt, on string, memMiB int) (config.LibvirtHost, facts, error) {
	if len(cfg.Hosts) == 0 {
		return config.LibvirtHost{}, facts{}, errors.New("no libvirt host configured: set libvirt.uri")
	}
	if on != "" {
		h, err := cfg.Host(on)
		if err != nil {
			return h, facts{}, err
		}
		cfg.Hosts = []config.LibvirtHost{h}
	}
	all := map[string]facts{}
	var cands []candidate
	for _, h := range cfg.Hosts {
		c, err := d.clientFor(h.URI)
		var f facts
		if err == nil {
			f, err = hostFacts(ctx, c, "")
		}
		all[h.URI] = f
		cands = append(cands, candidate{Host: h, Free: f.FreeBytes, Err: err})
	}
	if len(cands) == 1 { // one host: its own error, if any, says it best
		if cands[0].Err != nil {
			return cands[0].Host, facts{}, cands[0].Err
		}
		return cands[0].Host, all[cands[0].Host.URI], nil
	}
	h, err := pick(cands, memMiB)
	if err != nil {
		return h, facts{}, err
	}
	return h, all[h.URI], nil
}
