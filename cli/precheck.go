package cli

import (
	"context"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
	"github.com/fvmhq/fvm/core/vm"
)

// precheck asks the host to refuse now what it would refuse at create
// (an unknown or unavailable backend, a taken name, bad settings), before an
// image is pulled or uploaded for the VM. The rules are the host's alone.
func precheck(ctx context.Context, c *client.Client, spec vm.Spec) error {
	_, err := c.Create(ctx, api.CreateRequest{Spec: spec, CheckOnly: true})
	return err
}
