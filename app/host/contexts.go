package host

import (
	"github.com/fvmhq/fvm/app/menu"
	"github.com/fvmhq/fvm/core/remote"
	"github.com/fvmhq/fvm/core/store"
)

// Contexts offers the menu this machine's host and the remote hosts of `fvm
// context`, each reached through the user's OpenSSH like the CLI reaches them.
type Contexts struct {
	Layout  store.Layout
	Version string
}

var _ menu.Hosts = Contexts{}

func (c Contexts) store() remote.Contexts { return remote.Contexts{Dir: c.Layout.ConfigDir} }

// Choices are this machine, then the contexts by name, and the current one.
func (c Contexts) Choices() ([]menu.HostChoice, string, error) {
	list, cur, err := c.store().List()
	if err != nil {
		return nil, "", err
	}
	var out []menu.HostChoice
	for _, ctx := range list {
		if ctx.Host == "" {
			out = append(out, menu.HostChoice{Name: ctx.Name, Label: "this machine"})
			continue
		}
		label := ctx.Name
		if h, err := remote.ParseHost(ctx.Host); err == nil {
			label += " (" + h.Name() + ")"
		}
		out = append(out, menu.HostChoice{Name: ctx.Name, Label: label, Remote: true})
	}
	return out, cur, nil
}

// Connect makes a client of a context's host; it dials on first use.
func (c Contexts) Connect(name string) (menu.Client, error) {
	ctx, err := c.store().Get(name)
	if err != nil {
		return nil, err
	}
	h, err := remote.ParseHost(ctx.Host)
	if err != nil {
		return nil, err
	}
	cl, _, err := remote.NewClient(h, c.Layout.RunDir, c.Version)
	return cl, err
}
