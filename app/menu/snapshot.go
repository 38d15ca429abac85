package menu

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fvmhq/fvm/core/api"
)

// snapshot asks for a tag (the time by default) and snapshots the VM: a
// running one with its memory and a short pause, which the note reports.
func (m *Menu) snapshot(ctx context.Context, name string) error {
	tag, ok, err := m.opts.Dialogs.Entry("Snapshot "+name,
		fmt.Sprintf("Tag for the snapshot of %s (letters, digits, '.', '-', '_'). A running VM's memory is saved too; it pauses briefly.", name),
		time.Now().UTC().Format("20060102-150405"))
	if err != nil {
		return fmt.Errorf("cannot ask for a tag: %w", err)
	}
	if !ok {
		return nil
	}
	s, err := m.opts.Client.CreateSnapshot(ctx, name, strings.TrimSpace(tag))
	if err != nil {
		return err
	}
	what := "its disk"
	if s.Memory {
		what = fmt.Sprintf("its disk and memory (paused %.0f ms)", s.PauseSeconds*1000)
	}
	msg := fmt.Sprintf("Snapshot %s of %s: %s. `fvm snapshot restore %s %s` goes back to it.", s.Tag, name, what, name, s.Tag)
	if s.Notice != "" {
		msg += " " + s.Notice
	}
	m.opts.Dialogs.Notify("fvm: snapshot "+s.Tag+" of "+name, msg)
	return nil
}

// clone asks for a name (empty: generated) and makes a running copy of the
// VM from a snapshot taken now, with its own identity.
func (m *Menu) clone(ctx context.Context, name string) error {
	newName, ok, err := m.opts.Dialogs.Entry("Clone "+name,
		fmt.Sprintf("Name of the new VM, a copy of %s as it is now with an identity of its own (empty: a generated name).", name), "")
	if err != nil {
		return fmt.Errorf("cannot ask for a name: %w", err)
	}
	if !ok {
		return nil
	}
	v, err := m.opts.Client.Clone(ctx, name, api.CloneRequest{Name: strings.TrimSpace(newName)})
	m.Refresh()
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("%s is a clone of %s, %s.", v.Spec.Name, name, v.State)
	if v.Notice != "" {
		msg += " " + v.Notice
	}
	m.opts.Dialogs.Notify("fvm: cloned "+name, msg)
	return nil
}
