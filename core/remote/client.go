package remote

import (
	"fmt"
	"os"

	"github.com/fvmhq/fvm/core/api"
	"github.com/fvmhq/fvm/core/api/client"
)

// Transport is the SSH transport to h, sharing one connection per server
// through a socket under runDir (this machine's run dir: private, 0700).
func Transport(h Host, runDir, version string) (*SSH, error) {
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return nil, fmt.Errorf("run dir %s: %w", runDir, err)
	}
	dir, err := ControlDir(runDir)
	if err != nil {
		return nil, fmt.Errorf("ssh control dir: %w", err)
	}
	return &SSH{Host: h, ControlDir: dir, Revision: api.Revision, Version: version}, nil
}

// NewClient is an API client of the fvm host at h; nothing is dialled until
// its first request.
func NewClient(h Host, runDir, version string) (*client.Client, *SSH, error) {
	t, err := Transport(h, runDir, version)
	if err != nil {
		return nil, nil, err
	}
	c := client.NewRemote(h.String(), t.Dial)
	c.Version = version
	return c, t, nil
}
