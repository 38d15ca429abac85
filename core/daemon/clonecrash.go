package daemon

// A restored clone whose guest kernel crashed is restored once more before
// fvm gives up on it for a cold boot. Under TCG's multi-threaded emulation a
// guest kernel now and then oopses on a cross-CPU code patch (see the e2e
// harness's guestcrash_test.go); the guest's panic=5 reboots it, cold, under
// the clone's own seed, so the template's key no longer answers and the
// re-identification fails. A second restore costs seconds, a cold boot
// under TCG a minute or more.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/driver"
	"github.com/fvmhq/fvm/core/store"
	"github.com/fvmhq/fvm/core/warm"
)

// crashPoll is how often the serial log of a clone being re-identified is
// looked at for a crash.
const crashPoll = 250 * time.Millisecond

// errGuestCrashed ends a re-identification whose guest kernel crashed: the
// wait for its SSH would otherwise last until the guest rebooted by itself.
var errGuestCrashed = errors.New("the guest kernel crashed")

// reidentifyWatched re-identifies a restored clone (warm.Pool.Reidentify;
// spare: one kept ready) while it watches the clone's serial log (after
// from) for a kernel crash, which ends the wait at once.
func (d *Daemon) reidentifyWatched(ctx context.Context, inst *store.Instance, r *driver.Run, userKey string, spare bool, serial string, from int64) (warm.Reidentified, error) {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		t := time.NewTicker(crashPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if guestCrashed(serial, from) != "" {
					stop(errGuestCrashed)
					return
				}
			}
		}
	}()
	re, err := d.warm.Reidentify(ctx, inst, r, userKey, spare)
	if err != nil && errors.Is(context.Cause(ctx), errGuestCrashed) {
		err = errGuestCrashed
	}
	return re, err
}

// crashMarks are the serial console lines of a guest kernel going down
// (oops=panic makes every oops a panic on fvm's direct boots).
var crashMarks = []string{"Kernel panic - not syncing", "Oops: ", "BUG: kernel NULL pointer dereference"}

// serialSize is the size of a serial log now: where the next start's output begins.
func serialSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// guestCrashed returns the first kernel crash line the serial log at path
// holds after offset from ("" when none).
func guestCrashed(path string, from int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return ""
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		s := string(line)
		for _, m := range crashMarks {
			if strings.Contains(s, m) {
				return strings.TrimSpace(s)
			}
		}
	}
	return ""
}
