package driver

import (
	"context"

	"github.com/fvmhq/fvm/core/api"
)

// NICReporter is a running machine that can say its NIC's address and the
// guest's addresses on it (`fvm inspect`): QEMU's from the guest agent, vz's
// from the lease its network gives the NIC.
type NICReporter interface {
	NIC(ctx context.Context) (api.NIC, error)
}
