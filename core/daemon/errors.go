package daemon

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/fvmhq/fvm/core/api"
)

// hostError codes a failure of the host's own state (its disk), not of the
// request: an *api.Error keeps its code; a full disk says what to free.
func hostError(err error) error {
	if err == nil {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || strings.Contains(err.Error(), "no space left on device") {
		return api.Errorf(api.CodeInternal, "%v: the disk is full: free some space (`fvm image prune` deletes base disks no VM uses) and try again", err)
	}
	if api.CodeOf(err) != "" {
		return err
	}
	return fmt.Errorf("%w", err)
}
