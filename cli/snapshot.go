package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newSnapshotCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshot",
		Aliases: []string{"snapshots"},
		Short:   "Save a VM's disk and memory under a tag, list, remove and restore them",
		Long: `A snapshot keeps a VM as it is now: its disk, frozen as a read-only layer that the
snapshot, the VM's new top layer and every clone share (copy-on-write: it costs
what the VM writes afterwards), and, when the VM runs, its memory (running
processes, tmpfs), saved with a pause of the guest the command reports. A stopped
VM's snapshot holds its disk (a suspended one's memory too).

  fvm snapshot create web1 before-upgrade   # TAG defaults to the time
  fvm snapshot ls web1
  fvm snapshot restore web1 before-upgrade  # --force when it runs
  fvm snapshot rm web1 before-upgrade
  fvm clone web1:before-upgrade web2        # a new VM from a snapshot

VMs with shared folders get disk-only snapshots (QEMU cannot save them running).`,
	}
	cmd.AddCommand(newSnapshotCreateCmd(a), newSnapshotLsCmd(a), newSnapshotRmCmd(a), newSnapshotRestoreCmd(a))
	return cmd
}

// splitSource reads SRC[:TAG].
func splitSource(s string) (name, tag string, err error) {
	name, tag, _ = strings.Cut(s, ":")
	if name == "" {
		return "", "", fmt.Errorf("no VM given in %q: use NAME or NAME:TAG", s)
	}
	return name, tag, nil
}

// kept prints what a removal kept, and why.
func (a *app) kept(notes []string) {
	for _, n := range notes {
		a.phase("%s", strings.ToUpper(n[:1])+n[1:])
	}
}
