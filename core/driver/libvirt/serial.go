package libvirt

import (
	"bytes"
	"context"
	"os"
	"time"

	"github.com/fvmhq/fvm/core/store"
)

// The serial log: virtlogd writes it on the libvirt host into fvm's pool
// (fvm-NAME.serial.log), where fvm reads it as a volume, so it works the same
// for a remote host. A running machine copies what is new into the instance
// directory (SerialCopy) every second, and at once when the console stream
// says output came; the host reads that copy (OpenLog).

// syncSerial copies new output until the machine ends.
func (m *machine) syncSerial() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.nudge:
			time.Sleep(50 * time.Millisecond) // let virtlogd write the rest of a burst
		}
		m.syncSerialNow()
	}
}

// syncSerialNow copies what the log has beyond the local copy.
func (m *machine) syncSerialNow() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	copySerial(ctx, m.h, m.inst)
}

// syncSerialOnce fetches a stopped VM's log once (OpenLog of a VM no machine
// of this host follows).
func (d *Driver) syncSerialOnce(inst *store.Instance) {
	h, err := d.hostOf(inst)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	copySerial(ctx, h, inst)
	h.vols.closeData()
}

// copySerial appends the remote log's bytes past the local copy's size. A
// remote log shorter than the copy was rotated by virtlogd (at 2 MiB) or
// restarted: the copy starts again from it.
func copySerial(ctx context.Context, h *vmHost, inst *store.Instance) {
	name := serialVolume(inst.Spec.Name)
	size, err := h.vols.size(ctx, name)
	if isNotFound(err) { // virtlogd made the file after the pool's last refresh
		if h.vols.refresh(ctx) != nil {
			return
		}
		size, err = h.vols.size(ctx, name)
	}
	if err != nil {
		return
	}
	local := inst.Path(SerialCopy)
	have := int64(0)
	if st, err := os.Stat(local); err == nil {
		have = st.Size()
	}
	off := uint64(have)
	flags := os.O_WRONLY | os.O_APPEND | os.O_CREATE
	if size < off { // rotated or restarted: the copy starts again with it
		off, flags = 0, os.O_WRONLY|os.O_TRUNC|os.O_CREATE
	}
	if size == off {
		return
	}
	var buf bytes.Buffer
	if err := h.vols.readFrom(ctx, name, &buf, off); err != nil {
		return
	}
	f, err := os.OpenFile(local, flags, 0o644)
	if err != nil {
		return
	}
	f.Write(buf.Bytes())
	f.Close()
}
