package libvirt

import (
	"context"
	"errors"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/fvmhq/fvm/core/driver"
)

var _ driver.BasePruner = (*Driver)(nil)

// PruneBases removes, from fvm's pool on every configured libvirt host, the
// base volumes (and their markers) that no fvm domain there was made from and
// whose digest keep does not hold (the fvm host has no image of it any more):
// `fvm image rm` and `fvm image prune` free the libvirt hosts too. A host that
// does not answer is skipped with its error; nothing of another is lost.
func (d *Driver) PruneBases(ctx context.Context, keep func(digest string) bool) ([]string, error) {
	cfg, err := d.hosts()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, h := range cfg.Hosts {
		c, err := d.clientFor(h.URI)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		used, err := domainDigests(ctx, c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		vols := &poolAPI{c: c, t: c.t, name: cfg.Pool}
		names, err := vols.list(ctx)
		if err != nil {
			if !isNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		for _, v := range unusedBases(names, func(dg string) bool { return used[dg] || keep(dg) }) {
			if err := vols.remove(ctx, v); err != nil {
				errs = append(errs, fmt.Errorf("libvirt %s: remove %s: %w", c.t.uri, v, err))
				continue
			}
			removed = append(removed, fmt.Sprintf("%s (libvirt %s pool %s)", v, c.t.uri, cfg.Pool))
		}
	}
	return removed, errors.Join(errs...)
}

// domainDigests are the base digests fvm's domains on a daemon were made from
// (their metadata); other domains are not fvm's and say nothing.
func domainDigests(ctx context.Context, c *client) (map[string]bool, error) {
	l, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	doms, _, err := l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive|golibvirt.ConnectListDomainsInactive)
	if err != nil {
		return nil, fmt.Errorf("libvirt %s: list domains: %w", c.t.uri, err)
	}
	used := map[string]bool{}
	for _, dom := range doms {
		x, err := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		if m, ok := parseMeta(x); ok && m.Digest != "" {
			used[m.Digest] = true
		}
	}
	return used, nil
}
