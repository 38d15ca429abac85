package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/fvmhq/fvm/core/api/client"
)

// checkBackend refuses a --backend the host cannot run before any image is
// pulled or copied for the VM. The host checks again at create.
func checkBackend(ctx context.Context, c *client.Client, backend string) error {
	if backend == "" || backend == "auto" {
		return nil
	}
	info, err := c.Host(ctx)
	if err != nil || len(info.Backends) == 0 {
		return nil // an older host: it says so itself at create
	}
	var have []string
	for _, b := range info.Backends {
		if b.Name == backend {
			if !b.Available {
				return fmt.Errorf("--backend %s is not available on this host: %s", backend, b.Reason)
			}
			return nil
		}
		if b.Available {
			have = append(have, b.Name)
		}
	}
	return fmt.Errorf("--backend %q is unknown: use auto or one of %s", backend, strings.Join(have, ", "))
}
